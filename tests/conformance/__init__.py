"""Black-box checks of the OCI Distribution Spec v1.1.1 conformance workflows."""
