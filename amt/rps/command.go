package rps

import (
	"errors"
	"fmt"
	"strings"

	"amtd/secret"
)

// Maintenance tasks (spec/rpc-protocol.md §4).
const (
	TaskSyncTime       = "synctime"
	TaskSyncIP         = "syncip"
	TaskSyncHostname   = "synchostname"
	TaskSyncDeviceInfo = "syncdeviceinfo"
	TaskChangePassword = "changepassword"
)

// Command is the first message's method, parsed (spec/rpc-protocol.md §4).
type Command struct {
	Name     string       // MethodActivate, MethodDeactivate or MethodMaintenance
	Profile  string       // activate --profile NAME
	Password secret.Value // deactivate/maintenance --password PW
	Force    bool         // -f
	Task     string       // maintenance task
	// NewPassword is the optional static password of
	// `maintenance --changepassword [PW]`; empty means generate one.
	NewPassword secret.Value
}

// String describes the command without its passwords.
func (c Command) String() string {
	s := c.Name
	if c.Profile != "" {
		s += " --profile " + c.Profile
	}
	if !c.Password.IsZero() {
		s += " --password [redacted]"
	}
	if c.Task != "" {
		s += " --" + c.Task
		if !c.NewPassword.IsZero() {
			s += " [redacted]"
		}
	}
	if c.Force {
		s += " -f"
	}
	return s
}

// ParseCommand parses a command string as rpc-go builds it and RPS reads it
// with minimist: `activate --profile NAME [-f]`, `deactivate --password PW
// [-f]`, `maintenance -password PW --synctime|--syncip|--synchostname|
// --syncdeviceinfo|--changepassword [PW]`.
//
// It is tolerant where rpc-go versions differ: -password and --password,
// -p, --flag=value, and single- or double-quoted values (RPS itself splits on
// spaces only). It refuses unknown flags and stray words, so that a command
// amtd does not understand is never half-executed. Errors never contain a
// password.
func ParseCommand(s string) (Command, error) {
	words, err := splitWords(s)
	if err != nil {
		return Command{}, err
	}
	if len(words) == 0 {
		return Command{}, errors.New("rps: empty command")
	}
	c := Command{Name: words[0]}
	switch c.Name {
	case MethodActivate, MethodDeactivate, MethodMaintenance:
	default:
		return Command{}, fmt.Errorf("rps: unknown command %q; want activate, deactivate or maintenance", c.Name)
	}
	for i := 1; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") || w == "-" || w == "--" {
			return Command{}, fmt.Errorf("rps: %s: unexpected argument %d (values follow their flag)", c.Name, i)
		}
		name := strings.TrimLeft(w, "-")
		value, hasValue := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, value, hasValue = k, v, true
		}
		// takeValue consumes the next word when the flag has no =value.
		takeValue := func(optional bool) (string, bool, error) {
			if hasValue {
				return value, true, nil
			}
			if i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
				i++
				return words[i], true, nil
			}
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("rps: %s: flag --%s needs a value", c.Name, name)
		}
		switch name {
		case "profile":
			v, _, err := takeValue(false)
			if err != nil {
				return Command{}, err
			}
			c.Profile = v
		case "password", "p":
			v, _, err := takeValue(false)
			if err != nil {
				return Command{}, err
			}
			c.Password = secret.FromString(v)
		case "f", "force":
			b, err := boolValue(c.Name, name, value, hasValue)
			if err != nil {
				return Command{}, err
			}
			c.Force = b
		case TaskSyncTime, TaskSyncIP, TaskSyncHostname, TaskSyncDeviceInfo, TaskChangePassword:
			if c.Name != MethodMaintenance {
				return Command{}, fmt.Errorf("rps: %s: --%s belongs to maintenance", c.Name, name)
			}
			if c.Task != "" && c.Task != name {
				return Command{}, fmt.Errorf("rps: maintenance: two tasks, --%s and --%s; give one", c.Task, name)
			}
			c.Task = name
			if name == TaskChangePassword {
				v, ok, err := takeValue(true)
				if err != nil {
					return Command{}, err
				}
				if ok {
					c.NewPassword = secret.FromString(v)
				}
			} else if hasValue {
				b, err := boolValue(c.Name, name, value, true)
				if err != nil {
					return Command{}, err
				}
				if !b {
					c.Task = ""
				}
			}
		default:
			return Command{}, fmt.Errorf("rps: %s: unknown flag -%s", c.Name, name)
		}
	}
	switch {
	case c.Name == MethodActivate && c.Profile == "":
		return Command{}, errors.New("rps: activate: --profile NAME is required")
	case c.Name == MethodDeactivate && c.Password.IsZero() && !c.Force:
		return Command{}, errors.New("rps: deactivate: --password PW (or -f with a stored password) is required")
	case c.Name == MethodMaintenance && c.Task == "":
		return Command{}, errors.New("rps: maintenance: one of --synctime, --syncip, --synchostname, --syncdeviceinfo, --changepassword is required")
	case c.Name == MethodMaintenance && c.Password.IsZero():
		return Command{}, errors.New("rps: maintenance: --password PW is required")
	}
	return c, nil
}

func boolValue(cmd, flag, v string, has bool) (bool, error) {
	if !has {
		return true, nil
	}
	switch v {
	case "true", "1", "":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("rps: %s: --%s takes no value (got a %d-character value)", cmd, flag, len(v))
}

// splitWords splits on spaces and tabs, honouring single and double quotes
// and backslash escapes inside double quotes. A quoted empty string is a word.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case quote == '"':
			switch {
			case ch == '"':
				quote = 0
			case ch == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\'):
				i++
				cur.WriteByte(s[i])
			default:
				cur.WriteByte(ch)
			}
		case ch == '"' || ch == '\'':
			quote, inWord = ch, true
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("rps: command has an unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
