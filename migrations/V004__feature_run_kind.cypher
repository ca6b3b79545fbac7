// Feature runs have a kind (platform/work/feature_runs.py): runs recorded before kinds existed are gradient runs.
MATCH (fr:FeatureRun) WHERE fr.kind IS NULL SET fr.kind = 'gradient';
