"""Optional integrations with a site's own infrastructure (each needs its extra installed)."""
