package daemon

import (
	"log/slog"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
)

// SocketNames are the FileDescriptorName= values amtd's .socket units give
// their sockets, and the names services ask netsvc.Listeners for.
var SocketNames = []string{"dhcp", "dns", "dns-tcp", "hello", "agent", "cira", "api", "metrics", "control"}

// ActivatedSockets takes the sockets systemd passed ($LISTEN_FDS, $LISTEN_PID,
// $LISTEN_FDNAMES, sd_listen_fds(3)) keyed by their FileDescriptorName=, for
// netsvc.NewListeners. It unsets the variables so no child inherits them.
// A socket without a known name is still kept (under its name, or
// LISTEN_FD_<n>) but logged: no service will use it.
func ActivatedSockets(log *slog.Logger) map[string]*os.File {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil
	}
	byName := make(map[string]*os.File, len(files))
	for _, f := range files {
		name := f.Name()
		if _, dup := byName[name]; dup {
			log.Warn("socket activation: two sockets share one FileDescriptorName=; keeping the first",
				"name", name, "fix", "give each ListenStream=/ListenDatagram= its own .socket unit and name")
			f.Close()
			continue
		}
		known := false
		for _, n := range SocketNames {
			known = known || n == name
		}
		if !known {
			log.Warn("socket activation: socket with an unknown name will not be used",
				"name", name, "known", strings.Join(SocketNames, ","),
				"fix", "set FileDescriptorName= in the .socket unit")
		}
		byName[name] = f
	}
	return byName
}
