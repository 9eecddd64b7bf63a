"""Open-data publishing: small-cell suppression and the DCAT-US (data.json) catalog."""
