"""The run record: the persistence format every consumer of a search reads (solve's output, the
history, bench folders, export, the views, the server), below them and above the search."""
