-- usb_records keeps the new MEBx password of each record of a USB setup.bin amtd wrote
-- (amtd usb-setup), sealed, so that the machines a key touched can be entered in MEBx
-- before amtd activates them (spec/network.md §3). A file is named by the SHA-256 of
-- the bytes amtd wrote.
CREATE TABLE usb_records (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	file TEXT NOT NULL CHECK (length(file) = 64),
	record INTEGER NOT NULL CHECK (record > 0),
	domain TEXT NOT NULL,
	mebx_sealed BLOB NOT NULL,
	key_id TEXT NOT NULL REFERENCES master_keys(key_id),
	created INTEGER NOT NULL,
	UNIQUE (file, record)
) STRICT;
