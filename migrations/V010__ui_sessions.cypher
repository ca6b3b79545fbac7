// Web sign-in sessions (platform/access/sessions.py): looked up by the sha256 of the cookie's id,
// swept by expiry when a new one starts.
CREATE CONSTRAINT ui_session_hash IF NOT EXISTS FOR (n:UiSession) REQUIRE n.hash IS UNIQUE;
CREATE INDEX ui_session_expiry IF NOT EXISTS FOR (n:UiSession) ON (n.expires_at);
