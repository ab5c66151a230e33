package main

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"amtd/daemon/config"
)

// cmdCheckConfig validates amtd.conf the way `nginx -t` does: every problem
// as FILE:LINE: message on stderr and exit 1, or "FILE: ok" and what the
// file enables on stdout and exit 0. It reads the file only; it does not
// talk to a running daemon, so it is safe before `systemctl reload amtd`.
func cmdCheckConfig(c *cli, args []string) int {
	f := newCmdFlags(c, "check-config", "[-c FILE]",
		"Check amtd.conf and print every problem as FILE:LINE: message.\nExit status: 0 valid, 1 invalid, 2 usage.")
	path := f.fs.String("c", defaultConfigPath, "the configuration `FILE` to check")
	pos, code := f.parse(c, args, anyArgs)
	if code >= 0 {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(c.stderr, "amtd check-config: unexpected argument %q (the file is given with -c FILE)\n\n", pos[0])
		f.fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		var errs *config.Errors
		if !errors.As(err, &errs) {
			fmt.Fprintf(c.stderr, "%s: %v\n", *path, err)
			return exitFailure
		}
		// Warnings among the problems, in line order: one pass down the file.
		all := slices.Concat(errs.Problems, errs.Warnings)
		slices.SortStableFunc(all, func(a, b *config.Problem) int { return cmp.Compare(lineOrLast(a), lineOrLast(b)) })
		for _, p := range all {
			fmt.Fprintln(c.stderr, p)
		}
		fmt.Fprintf(c.stderr, "%s: invalid\n", *path)
		return exitFailure
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(c.stderr, w)
	}
	fmt.Fprintf(c.stdout, "%s: ok\n%s\n", *path, cfg.Summary())
	return exitOK
}

// lineOrLast sorts a problem without a line (the whole file) last.
func lineOrLast(p *config.Problem) int {
	if p.Line == 0 {
		return math.MaxInt
	}
	return p.Line
}
