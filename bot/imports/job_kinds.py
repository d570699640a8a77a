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


def reading_job_key(source_id: int) -> str:
    """The dedupe key of a source's first reading job (a Slack file's, a Mailchimp list's)."""
    return f"stage:{source_id}"


def rereading_job_key(source_id: int, stamp: float) -> str:
    """The dedupe key of a *Map columns* reading of a source, one per submission."""
    return f"remap:{source_id}:{stamp}"


def reads_source_sql(key: str, source_id: str) -> str:
    """SQL: whether the dedupe key `key` (a column) is one of a job reading the source whose
    id is the column or expression `source_id`: its first reading or a re-reading."""
    source = f"CAST({source_id} AS TEXT)"
    return f"({key} = 'stage:' || {source} OR {key} LIKE 'remap:' || {source} || ':%')"
