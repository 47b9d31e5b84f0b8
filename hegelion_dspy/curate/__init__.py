"""Phase 2, curation: which traces and pairs are worth training on, reviewers' labels, and the export to training
rows."""
