"""Rendering: form → .docx (docxtpl) → PDF/A (warm LibreOffice pool), template checks,
one-off and bulk generation."""
