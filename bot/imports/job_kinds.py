"""Names of the import pipeline's job kinds, shared by who enqueues and who cancels them."""

IMPORT_JOB = "import"  # stage pending files if any, then apply an approved batch
SLACK_FILE_JOB = "stage_slack_file"  # download a Slack-hosted CSV and stage it
PURGE_JOB = "purge_staged"  # delete staged rows of batches past their retention
UNDO_JOB = "undo_import"  # take out what a finished import added (bot/imports/undo.py)
