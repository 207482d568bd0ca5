"""Storage: events and recording index in ClickHouse (chDB embedded), chunks in a blob directory, metadata in SQL."""
