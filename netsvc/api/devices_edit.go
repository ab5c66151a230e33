package api

// deviceEditRoutes edit device records (tags, names) and a device's display
// settings (spec/redirection.md §7.1, §7.2).
func (s *Service) deviceEditRoutes() []route { return nil }
