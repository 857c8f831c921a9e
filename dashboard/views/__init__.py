"""Thin Streamlit pages: read filters, call queries and metrics, draw."""
