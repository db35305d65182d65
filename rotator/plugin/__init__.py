"""The extension API: what a provider or store type is built from, and how installed ones are found.

    provider.py   the adapter interface (ApiProvider, DashboardProvider) and what its calls return
    store.py      the store interface (Store) and a stored value's versions
    http.py       the HTTP client every provider instance shares (timeouts, retries, rate limits)
    settings.py   what a type's rotator.yaml settings and policy-file references are made of
    registry.py   ProviderType, StoreType, the Context a factory gets, and the entry-point discovery
    actions.py    commands a provider type adds to `rotator` (Boltly's `login`)
    testing.py    the contracts an adapter's own tests subclass

rotator's own providers (`rotator.providers`) and stores (`rotator.stores`) are built on this like
any other package's; nothing here imports them, the engine, the state database or the commands.
"""
