"""The ETL framework: settings, models, registries, the PostgreSQL layer, activities and workflows."""
