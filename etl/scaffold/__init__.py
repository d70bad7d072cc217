"""The source generator behind `scripts/new.py`: scaffold a source, or check and repair one.

    names.py     which names a source or flow may have
    layout.py    where a source's files live, and what their parts are called
    owners.py    which source registers which query type and strategy (clash checks)
    pyast.py     reading Python files with `ast`: decorators, imports, shape
    render.py    the files, from the templates in templates/
    plan.py      findings and actions; which files are scaffold-shaped, so may be rewritten
    check.py     examining a source's package: what is missing or broken, and what to do
    check_docs.py  examining its README and test: every flow described and tested
    apply.py     doing it: timestamped backups, writes, an import check
    report.py    telling the user: findings, results, next steps
    command.py   the whole command, as `scripts/new.py` runs it

A file new.py may rewrite is one that is still scaffold-shaped: it holds a `SAMPLE:`
marker and, imports and decorators aside, is exactly what the templates produce. Anything
else may hold someone's work, so it is only ever reported, never changed.
"""
