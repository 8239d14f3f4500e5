// Compiles the shared torch precompiled header once; other targets reuse it.
