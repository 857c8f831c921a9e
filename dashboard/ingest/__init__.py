"""Ingest: read manifests, DICOM files and PACS queries into the study index."""
