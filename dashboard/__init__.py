"""Data-diversity dashboard for India's national medical-imaging dataset programme."""
