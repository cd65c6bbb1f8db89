"""HTTP behaviour through the public API, with requests mocked by `responses`."""
