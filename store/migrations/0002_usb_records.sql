-- usb_records keeps the new MEBx password of each record of a USB setup.bin amtd wrote
-- (amtd usb-setup), sealed, so that the machines a key touched can be entered in MEBx
-- before amtd activates them (spec/network.md §3). A file is named by the SHA-256 of
-- the bytes amtd wrote; its label (10 hex digits) is in the host name each record gives
-- the machine (amt-<label>-r<record>), which amtd reads at activation to match the
-- record to the device.
CREATE TABLE usb_records (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	file TEXT NOT NULL CHECK (length(file) = 64),
	label TEXT NOT NULL CHECK (length(label) = 10),
	record INTEGER NOT NULL CHECK (record > 0),
	domain TEXT NOT NULL,
	mebx_sealed BLOB NOT NULL,
	key_id TEXT NOT NULL REFERENCES master_keys(key_id),
	device TEXT NOT NULL DEFAULT '',   -- the UUID that took the record, once matched
	created INTEGER NOT NULL,
	UNIQUE (file, record),
	UNIQUE (label, record)
) STRICT;
