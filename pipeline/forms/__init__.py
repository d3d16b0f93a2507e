"""Forms: template manifests, form validation, document numbering and bulk input rows."""
