// API tokens have a role (platform/access/auth.py): reader, curator or admin. Tokens made before roles
// existed could do everything, so they keep that as admin.
MATCH (t:ApiToken) WHERE t.role IS NULL SET t.role = 'admin';
