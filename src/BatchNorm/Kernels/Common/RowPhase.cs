using System;
using System.Runtime.CompilerServices;

namespace BatchNorm.Kernels;

/// <summary>
/// Aligning the vector accesses of a channels-last pass to one of its buffers when that buffer is not aligned. Managed
/// arrays seldom are: large float and double arrays start 16 to 40 bytes past a 64-byte boundary (checked on .NET 10), so
/// every 512-bit access of a row walked from its start spans two cache lines. When the row length is a whole number of vectors, every row starts at the same
/// <em>phase</em> p (elements to the next vector boundary): the affine pass then walks the rows as one flat run of aligned
/// vectors from p, one vector a row spanning the row's last <c>W - p</c> channels and the next row's first p, covers the
/// tensor's first p and last <c>W - p</c> elements with one overlapping vector each (per row until the forty-second
/// session), and reads the per-channel coefficients of the aligned vectors from an interleaved copy made for the call
/// (since the fourteenth session; before, three copies placed at the same phase). Every element gets the same operations as before, so the results are the
/// same bits at any phase. The in-cache statistics of wide rows walk the same way (since the thirty-second session):
/// the shifted sums take x's phase, with the shift and sums placed at it, and add each row's two ends through a masked
/// vector (<c>RowEndSums</c>, beside the aligned vectors since the forty-ninth session).
/// </summary>
/// <remarks>
/// Measured on the benchmark machine (AVX-512, [256,1024], data in cache, rows 24 bytes off): the affine map took
/// 1.33-1.54x a memcpy read from the row starts, 1.22-1.36x phased, the same as with every buffer aligned.
/// <para>
/// The affine pass takes the phase of its output, not of its input (since the thirty-first session). Two arrays need not
/// share a phase: on the Intel Xeon (AVX-512) machine of that session, consecutive large float arrays started 24 and 16
/// bytes past a line. There, with the rows walked in two at a time from the input's phase, every 512-bit store split
/// across two lines and the pass ran at a third to a half of its speed. A prototype of the pair loop on [256,1024] float32 in
/// cache, fastest of 12 rounds against a copy: input and output at one phase 1.08-1.14x; at different phases 2.7-3.9x
/// from the input's phase, 1.13-1.31x from the output's. The layer's inference, the two builds alternating in one
/// process: 2.26x a copy to 1.14x (float64 2.09x to 1.13x; [64,1024] 3.09x to 1.29x). When the phases agree,
/// nothing changes.
/// </para>
/// </remarks>
internal static class RowPhase
{
    /// <summary>Fewest rows for which copying the coefficients for the data's phase pays.</summary>
    public const int MinRows = 8;

    /// <summary>
    /// The phase of rows of <paramref name="channels"/> elements starting at <paramref name="data"/>: elements to the next
    /// <paramref name="lanes"/>-element boundary (0 when aligned), when every row shares it (channels a multiple of the
    /// lanes) and there are enough rows; otherwise -1, and the caller walks from the row starts as usual.
    /// </summary>
    public static unsafe int Of<T>(ReadOnlySpan<T> data, int rows, int channels, int lanes)
        where T : unmanaged
    {
        if (lanes == 1 || rows < MinRows || channels % lanes != 0 || data.IsEmpty)
        {
            return -1;
        }

        // Only a hint: if the GC moves the array before the pass, the accesses are merely unaligned again.
        return NonTemporal.ElementsToAlignment<T>(Unsafe.AsPointer(ref Unsafe.AsRef(in data[0])), lanes * sizeof(T));
    }
}
