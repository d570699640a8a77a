"""Names of the import pipeline's job kinds, shared by who enqueues and who cancels them."""

IMPORT_JOB = "import"  # stage pending files if any, then apply an approved batch
SLACK_FILE_JOB = "stage_slack_file"  # download a Slack-hosted CSV and stage it
PURGE_JOB = "purge_staged"  # delete staged rows of batches past their retention
UNDO_JOB = "undo_import"  # take out what a finished import added (bot/imports/undo.py)


def import_job_key(batch_id: int) -> str:
    """The import job's dedupe key: one job per import, whoever queues it (Slack's approval,
    `import --background`, the shell's own run) and whoever cancels it."""
    return f"import:{batch_id}"


def import_job_key_sql(batch_id: str) -> str:
    """`import_job_key` in SQL, of the column or expression `batch_id`."""
    return f"'import:' || {batch_id}"
