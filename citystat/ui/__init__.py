"""Streamlit helpers shared by the pages. The only Streamlit-importing code outside pages/."""
