"""Provider adapters: one small file per vendor, all behind `rotator.plugin.provider.Provider`."""
