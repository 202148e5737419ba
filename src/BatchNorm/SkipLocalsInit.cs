using System.Runtime.CompilerServices;

// Scratch memory (stackalloc of per-channel coefficients) is always written before it is read, exactly as the pooled
// arrays the same code rents for many channels (those are never cleared either), so zeroing it is pure cost: over a
// kilobyte per backward call, a tenth of a small batch's time.
[module: SkipLocalsInit]
