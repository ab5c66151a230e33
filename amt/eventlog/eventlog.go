// Package eventlog decodes the platform event records
// AMT_MessageLog.GetRecords returns in RecordArray: base64 of 21 bytes,
// an IPMI platform event trap as AMT stores it (spec/wsman.md §6; layout
// as MPS's eventLog.ts reads it):
//
//	0  TimeStamp u32 little-endian, seconds since 1970 (0 and
//	   0xFFFFFFFF: not set)
//	4  DeviceAddress   5 EventSensorType   6 EventType
//	7  EventOffset     8 EventSourceType   9 EventSeverity
//	10 SensorNumber    11 Entity           12 EntityInstance
//	13 EventData, 8 bytes
//
// The codec is pure. Entity names and descriptions are MPS's, so the API
// answers as MPS does.
package eventlog

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RecordSize is the length of one record.
const RecordSize = 21

// Record is one event.
type Record struct {
	TimeStamp       uint32
	DeviceAddress   uint8
	EventSensorType uint8
	EventType       uint8
	EventOffset     uint8
	EventSourceType uint8
	EventSeverity   uint8
	SensorNumber    uint8
	Entity          uint8
	EntityInstance  uint8
	EventData       [8]byte
}

// ShortError is a record under RecordSize bytes.
type ShortError struct{ Len int }

func (e *ShortError) Error() string {
	return fmt.Sprintf("eventlog: record is %d bytes, want %d", e.Len, RecordSize)
}

// Decode reads one record; bytes past RecordSize are ignored.
func Decode(b []byte) (Record, error) {
	var r Record
	if len(b) < RecordSize {
		return r, &ShortError{len(b)}
	}
	r.TimeStamp = binary.LittleEndian.Uint32(b)
	r.DeviceAddress, r.EventSensorType, r.EventType, r.EventOffset = b[4], b[5], b[6], b[7]
	r.EventSourceType, r.EventSeverity, r.SensorNumber = b[8], b[9], b[10]
	r.Entity, r.EntityInstance = b[11], b[12]
	copy(r.EventData[:], b[13:21])
	return r, nil
}

// Encode writes r in the wire layout (amtsim keeps records this way).
func (r Record) Encode() []byte {
	b := binary.LittleEndian.AppendUint32(make([]byte, 0, RecordSize), r.TimeStamp)
	b = append(b, r.DeviceAddress, r.EventSensorType, r.EventType, r.EventOffset, r.EventSourceType,
		r.EventSeverity, r.SensorNumber, r.Entity, r.EntityInstance)
	return append(b, r.EventData[:]...)
}

// Time is the time stamp in UTC; ok is false when the firmware left it
// unset (0 or 0xFFFFFFFF).
func (r Record) Time() (time.Time, bool) {
	if r.TimeStamp == 0 || r.TimeStamp == 0xFFFFFFFF {
		return time.Time{}, false
	}
	return time.Unix(int64(r.TimeStamp), 0).UTC(), true
}

// EntityName names the entity (IPMI entity IDs), "Unknown" for others.
func (r Record) EntityName() string {
	if int(r.Entity) < len(entities) {
		return entities[r.Entity]
	}
	return "Unknown"
}

// Sensor types MPS describes.
const (
	sensorAuthentication = 6
	sensorFirmware       = 15
	sensorWatchdog       = 18
	sensorNoBootMedia    = 30
	sensorOSLockup       = 32
	sensorBootFailure    = 35
	sensorFirmwareStart  = 37
)

// Description says what happened, as MPS's GetEventDetailStr; ok is false
// where MPS sends null (a watchdog event that is not an agent watchdog,
// an out-of-table firmware code).
func (r Record) Description() (string, bool) {
	d := r.EventData
	switch r.EventSensorType {
	case sensorAuthentication:
		return "Authentication failed " + strconv.Itoa(int(d[1])+int(d[2])<<8) + " times. The system may be under attack.", true
	case sensorFirmware:
		if d[0] == 235 {
			return "Invalid Data", true
		}
		table := firmwareProgress
		if r.EventOffset == 0 {
			table = firmwareError
		}
		if int(d[1]) < len(table) {
			return table[d[1]], true
		}
		return "", false
	case sensorWatchdog:
		if d[0] != 170 {
			return "", false
		}
		state, ok := watchdogStates[d[7]]
		if !ok {
			state = "undefined"
		}
		return fmt.Sprintf("Agent watchdog %02X%02X%02X%02X-%02X%02X-... changed to %s", d[4], d[3], d[2], d[1], d[6], d[5], state), true
	case sensorNoBootMedia:
		return "No bootable media", true
	case sensorOSLockup:
		return "Operating system lockup or power interrupt", true
	case sensorBootFailure:
		return "System boot failure", true
	case sensorFirmwareStart:
		return "System firmware started (at least one CPU is properly executing).", true
	}
	return "Unknown Sensor Type #" + strconv.Itoa(int(r.EventSensorType)), true
}

// entities are IPMI entity IDs 0-52, worded as MPS's SystemEntityTypes.
var entities = strings.Split("Unspecified|Other|Unknown|Processor|Disk|Peripheral|System management module|System board|"+
	"Memory module|Processor module|Power supply|Add in card|Front panel board|Back panel board|Power system board|"+
	"Drive backplane|System internal expansion board|Other system board|Processor board|Power unit|Power module|"+
	"Power management board|Chassis back panel board|System chassis|Sub chassis|Other chassis board|Disk drive bay|"+
	"Peripheral bay|Device bay|Fan cooling|Cooling unit|Cable interconnect|Memory device|System management software|"+
	"BIOS|Intel(r) ME|System bus|Group|Intel(r) ME|External environment|Battery|Processing blade|Connectivity switch|"+
	"Processor/memory module|I/O module|Processor I/O module|Management controller firmware|IPMI channel|PCI bus|"+
	"PCI express bus|SCSI bus|SATA/SAS bus|Processor front side bus", "|")

// firmwareError and firmwareProgress are the IPMI system firmware
// error (offset 0) and progress codes, as MPS words them.
var firmwareError = []string{"Unspecified.", "No system memory is physically installed in the system.",
	"No usable system memory, all installed memory has experienced an unrecoverable failure.",
	"Unrecoverable hard-disk/ATAPI/IDE device failure.", "Unrecoverable system-board failure.",
	"Unrecoverable diskette subsystem failure.", "Unrecoverable hard-disk controller failure.",
	"Unrecoverable PS/2 or USB keyboard failure.", "Removable boot media not found.",
	"Unrecoverable video controller failure.", "No video device detected.", "Firmware (BIOS) ROM corruption detected.",
	"CPU voltage mismatch (processors that share same supply have mismatched voltage requirements)",
	"CPU speed matching failure"}

var firmwareProgress = []string{"Unspecified.", "Memory initialization.", "Starting hard-disk initialization and test",
	"Secondary processor(s) initialization", "User authentication", "User-initiated system setup",
	"USB resource configuration", "PCI resource configuration", "Option ROM initialization", "Video initialization",
	"Cache initialization", "SM Bus initialization", "Keyboard controller initialization",
	"Embedded controller/management controller initialization", "Docking station attachment",
	"Enabling docking station", "Docking station ejection", "Disabling docking station",
	"Calling operating system wake-up vector", "Starting operating system boot process",
	"Baseboard or motherboard initialization", "reserved", "Floppy initialization", "Keyboard test",
	"Pointing device test", "Primary processor initialization"}

var watchdogStates = map[uint8]string{1: "Not Started", 2: "Stopped", 4: "Running", 8: "Expired", 16: "Suspended"}
