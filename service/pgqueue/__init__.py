"""The service's job queue on PostgreSQL: any number of ComfyUIs with the pack serve one API (issue 19).

Without `database_url` nothing here is imported (psycopg is needed only with a database).
"""
