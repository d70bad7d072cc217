"""The source contract: everything a source may import, and nothing that reaches a server.

    errors.py           every error the framework raises, with their tree
    query.py            `@query_type`, `Query`, `QueryFactory`: a source's typed parameters
    extract.py          `@extract_method`, `Page`, `ExtractStrategy`: reading records page by page
    models.py           the `Event` row and the transform from a raw record (or a reject reason)
    discovery.py        finding and importing every source under `sources/`
    settings.py         the framework's settings, read once from the environment
    source_settings.py  how a source declares its own settings (`@source_settings`)
    env_values.py       reading one variable as a checked, typed value
    times.py            reading ISO 8601 times the one way the project does
"""
