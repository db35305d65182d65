"""Provider adapters: one small file per vendor, all behind `providers.base.Provider`."""
