// Pending dataset versions (platform/versions/datasets.py) are found by their staging id while rows are written.
CREATE INDEX dataset_version_staging IF NOT EXISTS FOR (n:DatasetVersion) ON (n.staging_id);
