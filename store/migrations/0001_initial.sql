-- amtd credential store, schema version 1.
--
-- Conventions:
--   * times are INTEGER nanoseconds since the Unix epoch (UTC); 0 means "never";
--   * device UUIDs are lower-case text in the usual 8-4-4-4-12 form (spec/apf.md §6:
--     AMT sends upper case, operators type lower case, so the store holds one form);
--   * columns ending in "_sealed" hold AES-256-GCM sealed values (see store/seal.go): a
--     version byte, a binding tag, the nonce and the ciphertext. The row's key_id names
--     the master key that sealed them. Plaintext secrets never reach any column.

-- master_keys lists every master key that has sealed values in this database. The check
-- value is a known constant sealed with the key: opening it tells "wrong key file"
-- (no row for the key's id) from "tampered database" (row present, check fails).
CREATE TABLE master_keys (
	key_id  TEXT PRIMARY KEY,
	created INTEGER NOT NULL,
	retired INTEGER NOT NULL DEFAULT 0,
	check_sealed BLOB NOT NULL
) STRICT;

CREATE TABLE devices (
	uuid TEXT PRIMARY KEY CHECK (length(uuid) = 36 AND uuid = lower(uuid)),
	hostname TEXT NOT NULL DEFAULT '',
	friendly_name TEXT NOT NULL DEFAULT '',
	dns_suffix TEXT NOT NULL DEFAULT '',
	addresses TEXT NOT NULL DEFAULT '[]',      -- JSON array of IP address strings
	mac TEXT NOT NULL DEFAULT '',              -- aa:bb:cc:dd:ee:ff or ''
	amt_version TEXT NOT NULL DEFAULT '',
	amt_build TEXT NOT NULL DEFAULT '',
	amt_sku TEXT NOT NULL DEFAULT '',
	control_mode INTEGER NOT NULL DEFAULT 0,   -- CurrentControlMode: 0 pre-provisioning, 1 CCM, 2 ACM
	provisioning_state TEXT NOT NULL DEFAULT '',
	last_error TEXT NOT NULL DEFAULT '',
	next_action TEXT NOT NULL DEFAULT '',
	-- CIRA (spec/apf.md §5, §10; spec/redirection.md §8)
	mps_username TEXT NOT NULL DEFAULT '',
	cira_connected INTEGER NOT NULL DEFAULT 0,
	connected_since INTEGER NOT NULL DEFAULT 0,
	last_seen INTEGER NOT NULL DEFAULT 0,
	last_disconnected INTEGER NOT NULL DEFAULT 0,
	owner_instance TEXT NOT NULL DEFAULT '',   -- kept for multi-instance relays (spec/apf.md §10)
	bound_ports TEXT NOT NULL DEFAULT '[]',    -- JSON array of ports AMT asked to forward
	remote_addr TEXT NOT NULL DEFAULT '',
	tags TEXT NOT NULL DEFAULT '[]',           -- JSON array of strings
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) STRICT;
CREATE INDEX devices_hostname ON devices(hostname);
CREATE INDEX devices_mac ON devices(mac) WHERE mac <> '';
CREATE INDEX devices_mps_username ON devices(mps_username) WHERE mps_username <> '';

CREATE TABLE device_history (
	id INTEGER PRIMARY KEY,
	device TEXT NOT NULL REFERENCES devices(uuid) ON DELETE CASCADE,
	time INTEGER NOT NULL,
	from_state TEXT NOT NULL,
	to_state TEXT NOT NULL,
	step TEXT NOT NULL DEFAULT '',
	detail TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX device_history_device ON device_history(device, time);

-- device_secrets keeps each device password's history (pending, current, previous) so that
-- a crash at any instant leaves the password the device actually has among the candidates.
-- The sealed value is bound to (device, kind, id), not to state: promotion only relabels.
-- AUTOINCREMENT: an id is never reused, so a sealed value bound to a deleted row can never
-- open in a later one.
CREATE TABLE device_secrets (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	device TEXT NOT NULL REFERENCES devices(uuid) ON DELETE CASCADE,
	kind TEXT NOT NULL CHECK (kind IN ('amt_admin', 'mebx', 'mps')),
	state TEXT NOT NULL CHECK (state IN ('pending', 'current', 'previous')),
	value_sealed BLOB NOT NULL,
	key_id TEXT NOT NULL REFERENCES master_keys(key_id),
	slow_hash TEXT NOT NULL DEFAULT '',        -- argon2id of the MPS password for CIRA auth (spec/apf.md §5)
	created INTEGER NOT NULL,
	UNIQUE (device, kind, state)
) STRICT;

CREATE TABLE domains (
	suffix TEXT PRIMARY KEY CHECK (suffix = lower(suffix)),
	pfx_sealed BLOB NOT NULL,
	pfx_password_sealed BLOB NOT NULL,
	key_id TEXT NOT NULL REFERENCES master_keys(key_id),
	root_sha256 TEXT NOT NULL,                 -- hex, lower case (spec/activation.md §12)
	leaf_expiry INTEGER NOT NULL,
	metadata TEXT NOT NULL DEFAULT '{}',       -- JSON
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) STRICT;

CREATE TABLE profiles (
	name TEXT PRIMARY KEY,
	settings TEXT NOT NULL DEFAULT '{}',       -- JSON
	match_rules TEXT NOT NULL DEFAULT '[]',    -- JSON
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) STRICT;

CREATE TABLE dhcp_leases (
	mac TEXT PRIMARY KEY,
	ip TEXT NOT NULL,
	hostname TEXT NOT NULL DEFAULT '',
	client_fqdn TEXT NOT NULL DEFAULT '',
	expires INTEGER NOT NULL,
	state TEXT NOT NULL CHECK (state IN ('offered', 'bound', 'declined', 'released')),
	updated INTEGER NOT NULL
) STRICT;
CREATE INDEX dhcp_leases_ip ON dhcp_leases(ip);
CREATE INDEX dhcp_leases_expires ON dhcp_leases(expires);

CREATE TABLE dns_records (
	name TEXT NOT NULL,
	type TEXT NOT NULL,
	value TEXT NOT NULL,
	ttl INTEGER NOT NULL,                      -- seconds
	source TEXT NOT NULL CHECK (source IN ('dhcp', 'ddns', 'static', 'registrar')),
	updated INTEGER NOT NULL,
	PRIMARY KEY (name, type, value)
) STRICT;
CREATE INDEX dns_records_source ON dns_records(source);

-- keys holds named keys other than device passwords: TSIG secrets, CA private keys.
CREATE TABLE keys (
	name TEXT PRIMARY KEY,
	kind TEXT NOT NULL CHECK (kind IN ('tsig', 'ca')),
	value_sealed BLOB NOT NULL,
	key_id TEXT NOT NULL REFERENCES master_keys(key_id),
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL
) STRICT;

-- api_keys stores only a SHA-256 of each API token; the token is shown once, at creation.
CREATE TABLE api_keys (
	id TEXT PRIMARY KEY,
	prefix TEXT NOT NULL UNIQUE,
	sha256 BLOB NOT NULL,
	role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
	name TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL,
	last_used INTEGER NOT NULL DEFAULT 0,
	revoked INTEGER NOT NULL DEFAULT 0
) STRICT;

-- audit records who did what, when and why; never a secret value.
CREATE TABLE audit (
	id INTEGER PRIMARY KEY,
	time INTEGER NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	object TEXT NOT NULL,
	reason TEXT NOT NULL DEFAULT '',
	result TEXT NOT NULL
) STRICT;
CREATE INDEX audit_time ON audit(time);
CREATE INDEX audit_object ON audit(object);
