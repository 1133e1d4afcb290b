"""The report over many run directories: loading, figures, tables and the HTML/Markdown document."""
