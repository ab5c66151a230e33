package amtsim

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"

	"amtd/amt/wsman"
)

// The simulator answers in the shape of real firmware by starting from the
// instances of the WS-Man fixtures (Apache-2.0, see fixtures/NOTICE.md):
// every class a fixture holds is served read-only as it stands, and the
// classes whose values depend on the device's state are built from the
// fixture instance as a template, with values replaced in place so element
// names and order stay those of firmware (spec/wsman.md §5, §7).
//
//go:embed fixtures
var fixtureFS embed.FS

// templateSet holds the parsed fixture instances by class name.
type templateSet struct {
	byClass map[string][]wsman.Instance
}

var (
	templatesOnce sync.Once
	templates     *templateSet
	templatesErr  error
)

// loadTemplates parses the embedded fixtures once per process; every device
// shares the result read-only, so a device costs no template memory.
func loadTemplates() (*templateSet, error) {
	templatesOnce.Do(func() {
		ts := &templateSet{byClass: map[string][]wsman.Instance{}}
		gets := map[string][]wsman.Instance{}
		err := fs.WalkDir(fixtureFS, "fixtures", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".xml") {
				return err
			}
			b, err := fixtureFS.ReadFile(p)
			if err != nil {
				return err
			}
			m, err := wsman.ParseResponse(b)
			if err != nil {
				return fmt.Errorf("amtsim: fixture %s: %w", p, err)
			}
			// A Pull lists every instance; a Get only one: prefer the Pull.
			for _, in := range m.Instances {
				if path.Base(p) == "pull.xml" {
					ts.byClass[in.Class] = append(ts.byClass[in.Class], in)
				} else if len(gets[in.Class]) == 0 {
					gets[in.Class] = append(gets[in.Class], in)
				}
			}
			return nil
		})
		// The Get fixture stands first: a Get without selectors returns the
		// first instance, and so answers in the Get fixture's shape, while
		// an Enumerate still lists the Pull fixture's other instances.
		for class, ins := range gets {
			if list := ts.byClass[class]; len(list) > 0 {
				list[0] = ins[0]
			} else {
				ts.byClass[class] = ins
			}
		}
		templates, templatesErr = ts, err
	})
	return templates, templatesErr
}

// instances returns copies of the fixture instances of class.
func (ts *templateSet) instances(class string) []wsman.Instance {
	src := ts.byClass[class]
	out := make([]wsman.Instance, len(src))
	for i, in := range src {
		out[i] = cloneInstance(in)
	}
	return out
}

// template returns a copy of the first fixture instance of class, or an
// empty instance in the class namespace when no fixture holds one.
func (ts *templateSet) template(class string) wsman.Instance {
	if src := ts.byClass[class]; len(src) > 0 {
		return cloneInstance(src[0])
	}
	uri, _ := wsman.ResourceURI(class)
	return wsman.Instance{Class: class, Namespace: uri}
}

func cloneInstance(in wsman.Instance) wsman.Instance {
	out := in
	out.Props = make([]wsman.Property, len(in.Props))
	copy(out.Props, in.Props)
	return out
}

// setProp replaces the values of name keeping its position, or appends it
// when the template lacks it (newer firmware adds properties at the end).
func setProp(in *wsman.Instance, name string, values ...string) {
	in.Set(name, values...)
}

// dropProp removes a property, for values the device does not have (e.g. an
// empty list).
func dropProp(in *wsman.Instance, name string) {
	kept := in.Props[:0]
	for _, p := range in.Props {
		if p.Name != name {
			kept = append(kept, p)
		}
	}
	in.Props = kept
}
