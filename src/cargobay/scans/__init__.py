"""Image scans on the service layer: status, findings, configuration, the scan task."""
