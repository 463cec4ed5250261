"""The upstream model server: its client, stream clocks, status, what it is and what its template does."""
