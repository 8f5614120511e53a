"""Image scanning: package inventory from streamed layers, vulnerability findings from the
offline OSV database (cargobay.vulndb), and SBOMs. The entry point is
`cargobay.scanning.scan.scan_image` (kept out of this module, so importing one part of the
scanner does not load the others)."""
