"""Systems-of-record sandbox: a local HTTP stand-in for an ERP, payments and notifications."""
