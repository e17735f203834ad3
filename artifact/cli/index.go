package cli

import (
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/artifact/config"
	"github.com/falco-k8s/falco-k8s/artifact/index"
)

func newIndexCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Interact with index",
		Long:  "Interact with index (add, remove, list, update); indexes map artifact names to OCI repositories.",
	}
	a.addPersistent(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "add NAME URL [BACKEND]",
		Short: "Add an index to the local falcoctl configuration",
		Long: "Fetch an index (backends: http, https, file) and cache it under ~/.config/falcoctl. " +
			"The index is also added to the config file when that file exists or can be created.",
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, rawURL, backend := args[0], args[1], ""
			if len(args) == 3 {
				backend = args[2]
			}
			if _, err := url.Parse(rawURL); err != nil {
				return fmt.Errorf("index add %s: invalid URL: %w", name, err)
			}
			c, err := a.cache()
			if err != nil {
				return err
			}
			if _, ok := c.Get(name); ok {
				// falcoctl silently did nothing; say so.
				a.log.Info().Str("name", name).Msg("index already present; use 'index update' to refresh it")
				return nil
			}
			entries, err := index.Fetch(cmd.Context(), nil, rawURL, backend)
			if err != nil {
				return fmt.Errorf("index add %s: %w", name, err)
			}
			if err := c.Put(name, rawURL, backend, entries, time.Now()); err != nil {
				return fmt.Errorf("index add %s: %w", name, err)
			}
			if !inConfig(a.cfg, name) {
				ixs := append(fileIndexes(a), config.Index{Name: name, URL: rawURL, Backend: backend})
				if err := config.SetIndexes(a.configPath, ixs); err != nil {
					a.log.Warn().Err(err).Str("config", a.configPath).Msg("index cached but not written to the config file; it is still used from the cache")
				}
			}
			a.log.Info().Str("name", name).Int("artifacts", len(entries)).Msg("index added")
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "remove NAME...",
		Aliases: []string{"rm"},
		Short:   "Remove an index from the local falcoctl configuration",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.cache()
			if err != nil {
				return err
			}
			for _, name := range args {
				_, cached := c.Get(name)
				if !cached && !inConfig(a.cfg, name) {
					return fmt.Errorf("index remove %s: no such index (see 'index list')", name)
				}
				if err := c.Remove(name); err != nil {
					return fmt.Errorf("index remove %s: %w", name, err)
				}
				if inConfig(a.cfg, name) && a.cfg.Path != "" {
					var keep []config.Index
					for _, ix := range fileIndexes(a) {
						if ix.Name != name {
							keep = append(keep, ix)
						}
					}
					if err := config.SetIndexes(a.configPath, keep); err != nil {
						return fmt.Errorf("index remove %s: update config: %w", name, err)
					}
					a.cfg.Indexes = keep
				}
				a.log.Info().Str("name", name).Msg("index removed")
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "update NAME...",
		Short: "Update an existing index",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.cache()
			if err != nil {
				return err
			}
			for _, name := range args {
				ce, ok := c.Get(name)
				if !ok {
					// Config-only indexes can be updated too (falcoctl errored).
					found := false
					for _, ix := range a.cfg.Indexes {
						if ix.Name == name {
							ce, found = index.CacheEntry{Name: name, URL: ix.URL, Backend: ix.Backend}, true
						}
					}
					if !found {
						return fmt.Errorf("index update %s: not found in the cache or the config (add it with 'index add')", name)
					}
				}
				entries, err := index.Fetch(cmd.Context(), nil, ce.URL, ce.Backend)
				if err != nil {
					return fmt.Errorf("index update %s: %w", name, err)
				}
				if err := c.Put(name, ce.URL, ce.Backend, entries, time.Now()); err != nil {
					return fmt.Errorf("index update %s: %w", name, err)
				}
				a.log.Info().Str("name", name).Int("artifacts", len(entries)).Msg("index updated")
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List all the added indexes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.cache()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tURL\tADDED\tUPDATED")
			listed := map[string]bool{}
			for _, ce := range c.Configs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ce.Name, ce.URL, ce.AddedTimestamp, ce.UpdatedTimestamp)
				listed[ce.Name] = true
			}
			for _, ix := range a.cfg.Indexes {
				if !listed[ix.Name] {
					// Configured but never cached: fetched on use.
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ix.Name, ix.URL, "-", "-")
				}
			}
			return tw.Flush()
		},
	})
	return cmd
}

// fileIndexes are the indexes as written in the config file (not the
// default or env ones), so rewriting the file does not persist env values.
func fileIndexes(a *app) []config.Index {
	if a.cfg.Path == "" || a.cfg.FromEnv["indexes"] {
		c, err := config.Load(a.configPath, func(string) string { return "" })
		if err != nil || c.Path == "" {
			return nil
		}
		return c.Indexes
	}
	return a.cfg.Indexes
}
