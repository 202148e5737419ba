using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace BatchNorm.Kernels;

/// <summary>
/// Per-call scratch arrays started on a cache line. The wide-row sums accumulate into per-channel arrays that are loaded
/// and stored once per data vector; where such an array starts off a 64-byte boundary (rented and stack buffers mostly
/// do), every 512-bit access spans two lines. On [256,1024] float32 in cache, a four-row statistics loop took 9.1-9.7 us
/// with its accumulators aligned and 9.7-11.2 us with them 16 bytes off (12.2 us against 10.7 us with the data off too).
/// </summary>
internal static class CacheLine
{
    /// <summary>
    /// The boundary used: the widest vector is 64 bytes, so from a 64-byte boundary no vector access spans two lines, on
    /// 64-byte-line cores (x64, most ARM64) and 128-byte-line ones (Apple) alike.
    /// </summary>
    public const int Bytes = 64;

    /// <summary>Spare elements a buffer needs so that <see cref="Align{T}"/> can start it on a line.</summary>
    public static unsafe int Slack<T>()
        where T : unmanaged => Bytes / sizeof(T);

    /// <summary>
    /// The first <paramref name="length"/> elements of <paramref name="buffer"/> from its first 64-byte boundary
    /// (<paramref name="buffer"/> must hold <c>length + Slack&lt;T&gt;()</c>). Only a hint: if the GC moves a rented
    /// array during the call, its accesses are merely unaligned again.
    /// </summary>
    public static Span<T> Align<T>(Span<T> buffer, int length)
        where T : unmanaged => AlignAt(buffer, 0, length);

    /// <summary>
    /// <paramref name="length"/> elements of <paramref name="buffer"/> placed so that element <paramref name="index"/>
    /// of the result starts a line (<paramref name="buffer"/> must hold <c>length + Slack&lt;T&gt;()</c>): for arrays
    /// read in vectors from <paramref name="index"/> on. The same hint as <see cref="Align{T}"/>.
    /// </summary>
    public static Span<T> AlignAt<T>(Span<T> buffer, int index, int length)
        where T : unmanaged => buffer.Slice(Skip<T>(buffer[index..]), length);

    /// <summary>
    /// Spare elements, beyond <see cref="Slack{T}"/>, that <see cref="AlignAtClearOf{T}"/> may slide a buffer by: a
    /// quarter page.
    /// </summary>
    public static unsafe int SlideSlack<T>()
        where T : unmanaged => PageBytes / 4 / sizeof(T);

    /// <summary>
    /// <see cref="AlignAt{T}"/>, then slid on by the fewest whole lines (at most <see cref="SlideSlack{T}"/> elements) so
    /// that none of the result's elements at <paramref name="stored"/> (the starts of arrays stored beside the loads of
    /// some streams) lies just above any row of those streams in its page (<see cref="IsJustAbove(int, int)"/>), where the loads
    /// would wait on the stores (<see cref="PageBytes"/>). <paramref name="loaded"/> holds the page offsets of the streams'
    /// first rows; their rows are <paramref name="rowBytes"/> apart, so their page offsets repeat every
    /// <see cref="RowPeriod"/> bytes. Where that period is no wider than <see cref="AliasBytes"/>, every placement lies
    /// just above some row, and the buffer is not slid. <paramref name="buffer"/> must hold
    /// <c>length + Slack&lt;T&gt;() + SlideSlack&lt;T&gt;()</c>. The same hint as <see cref="Align{T}"/>.
    /// </summary>
    /// <remarks>
    /// Each pair of a stored start and a loaded stream rules out fewer than <see cref="AliasBytes"/> of every period, so
    /// with rows of a whole page one stored start and two streams leave at least half of the 17 slides.
    /// </remarks>
    public static Span<T> AlignAtClearOf<T>(Span<T> buffer, int index, int length, ReadOnlySpan<int> loaded, int rowBytes, ReadOnlySpan<int> stored)
        where T : unmanaged
    {
        Span<T> aligned = AlignAt(buffer, index, length + SlideSlack<T>());
        int period = RowPeriod(rowBytes);
        if (period <= AliasBytes)
        {
            return aligned[..length];
        }

        int line = Slack<T>();
        for (int slide = 0; slide <= SlideSlack<T>(); slide += line)
        {
            bool clear = true;
            foreach (int i in stored)
            {
                int store = PageOffset(in aligned[slide + i]);
                foreach (int load in loaded)
                {
                    clear &= !IsJustAbove(store - load, period);
                }
            }

            if (clear)
            {
                return aligned.Slice(slide, length);
            }
        }

        return aligned[..length];
    }

    /// <summary>
    /// The page offset for the first of arrays spread a quarter page apart (<see cref="SpreadAcrossPage{T}"/>) that are
    /// stored beside the loads of a stream at page offset <paramref name="loaded"/>: the line a quarter page above it. Each
    /// array then lies a whole number of quarter pages, less part of a line, above the stream: modulo the period of the
    /// stream's rows' page offsets (<see cref="RowPeriod"/>; above <see cref="AliasBytes"/> it divides a quarter page or is
    /// a half or whole page), that is zero or a period less part of a line, never just above a row
    /// (<see cref="IsJustAbove(int, int)"/>), where the loads would wait on the stores.
    /// </summary>
    public static int QuarterAbove(int loaded) => (loaded + (PageBytes / 4)) & (PageBytes - 1) & ~(Bytes - 1);

    /// <summary>
    /// The page offset for the first of <paramref name="stored"/> arrays spread a quarter page apart
    /// (<see cref="SpreadAcrossPage{T}"/>) and stored beside the loads of several streams, at page offsets
    /// <paramref name="loaded"/>, whose rows are <paramref name="rowBytes"/> apart: the first line from
    /// <see cref="QuarterAbove"/> of the first stream on that leaves no array just above a row of any of them (the rows'
    /// page offsets repeat every <see cref="RowPeriod"/> bytes; where that is no wider than <see cref="AliasBytes"/>,
    /// nothing can, and the quarter above is returned).
    /// </summary>
    public static int QuarterAboveClearOf(ReadOnlySpan<int> loaded, int rowBytes, int stored)
    {
        int start = QuarterAbove(loaded[0]);
        int period = RowPeriod(rowBytes);
        for (int slide = 0; slide < PageBytes && period > AliasBytes; slide += Bytes)
        {
            int first = (start + slide) & (PageBytes - 1);
            bool clear = true;
            for (int a = 0; a < stored; a++)
            {
                foreach (int offset in loaded)
                {
                    clear &= !IsJustAbove(first + (a * (PageBytes / 4)) - offset, period);
                }
            }

            if (clear)
            {
                return first;
            }
        }

        return start;
    }

    /// <summary>Elements a buffer needs for <see cref="PlaceReadBeside{T}"/>.</summary>
    public static int ReadBesideLength<T>(int arrays, int length, bool spread)
        where T : unmanaged => spread ? (arrays * length) + SpreadSlack<T>(arrays) : (arrays * RoundUp<T>(length)) + Slack<T>();

    /// <summary>
    /// Places <paramref name="starts"/>.Length per-channel arrays of <paramref name="length"/> elements that a pass reads
    /// beside the stores of a stream at page offset <paramref name="stored"/> (coefficients beside an output) in
    /// <paramref name="buffer"/> (<see cref="ReadBesideLength{T}"/> elements), writing where each starts into
    /// <paramref name="starts"/>. Each starts a line. With <paramref name="spread"/> (arrays read beside every data vector)
    /// they go a quarter page apart from an eighth of a page above the stores (<see cref="SpreadAcrossPage{T}"/>), so none
    /// lies within an eighth of a page above or below them (see <see cref="PageBytes"/>); otherwise end to end, each
    /// rounded up to whole lines.
    /// </summary>
    public static void PlaceReadBeside<T>(Span<T> buffer, int length, bool spread, int stored, Span<int> starts)
        where T : unmanaged
    {
        if (spread)
        {
            SpreadAcrossPage<T>(buffer, 0, length, (stored + (PageBytes / 8)) & (PageBytes - 1) & ~(Bytes - 1), starts);
            return;
        }

        int aligned = Skip<T>(buffer);
        for (int i = 0; i < starts.Length; i++)
        {
            starts[i] = aligned + (i * RoundUp<T>(length));
        }
    }

    /// <summary>Spare elements a buffer needs beyond its arrays for <see cref="SpreadAcrossPage{T}"/>: a page per array.</summary>
    public static int SpreadSlack<T>(int arrays)
        where T : unmanaged => arrays * PageSlack<T>();

    /// <summary>
    /// Places <paramref name="starts"/>.Length arrays (at most four) of <paramref name="length"/> elements one after the
    /// other in <paramref name="buffer"/> (which must hold <c>starts.Length * length + SpreadSlack&lt;T&gt;(starts.Length)</c>)
    /// so that element <paramref name="index"/> of each starts a line, the first at page offset <paramref name="first"/>
    /// (a multiple of <see cref="Bytes"/>) and each next one a quarter page above the one before. Writes each array's first
    /// element's offset in <paramref name="buffer"/> into <paramref name="starts"/>. The same hint as <see cref="Align{T}"/>.
    /// </summary>
    /// <remarks>
    /// Arrays a whole number of pages long laid end to end put the same element of each at one page offset. On the Zen 4
    /// machine (forty-ninth session) the statistics of float32 [256,1024] in cache, whose groups read a vector of the shift
    /// and read and write one of each sum beside every four vectors of x, took 18-20 us on some physical pages under those
    /// three arrays and 38-44 us on others (the same virtual addresses, the pages dropped with madvise and touched again
    /// between trials: 2 to 4 trials in 16 slow; the pool's array a process first rents keeps its pages, so one process in
    /// eight to sixteen took the slow time on every call). With the arrays a quarter page apart a loop like the groups'
    /// took 15 us on every one of those pages, and the statistics 18-19 us on each of 120 arrays from the pool.
    /// </remarks>
    public static void SpreadAcrossPage<T>(ReadOnlySpan<T> buffer, int index, int length, int first, Span<int> starts)
        where T : unmanaged
    {
        Debug.Assert(starts.Length <= 4 && first % Bytes == 0);
        int size = Unsafe.SizeOf<T>();
        int quarter = PageBytes / 4;
        int position = 0;
        int bufferOffset = PageOffset(in MemoryMarshal.GetReference(buffer));
        for (int a = 0; a < starts.Length; a++)
        {
            // The first element at or after `position` whose element `index` lies at the array's page offset.
            int target = (first + (a * quarter)) & (PageBytes - 1);
            int here = (bufferOffset + ((position + index) * size)) & (PageBytes - 1);
            position += ((target - here) & (PageBytes - 1)) / size;
            starts[a] = position;
            position += length;
        }

        Debug.Assert(position <= buffer.Length);
    }

    /// <summary>
    /// The period, in bytes, of the page offsets of rows <paramref name="rowBytes"/> apart: the largest power of two
    /// dividing both the row and <see cref="PageBytes"/> (the whole page for rows of whole pages).
    /// </summary>
    public static int RowPeriod(int rowBytes)
    {
        int lowest = rowBytes & -rowBytes;
        return rowBytes == 0 || lowest >= PageBytes ? PageBytes : lowest;
    }

    /// <summary>
    /// Elements from the start of <paramref name="buffer"/> to its first 64-byte boundary (0 when the buffer is not
    /// even aligned to its element size, which managed arrays always are).
    /// </summary>
    public static unsafe int Skip<T>(ReadOnlySpan<T> buffer)
        where T : unmanaged
    {
        int skip = NonTemporal.ElementsToAlignment<T>(Unsafe.AsPointer(ref MemoryMarshal.GetReference(buffer)), Bytes);
        return skip < 0 ? 0 : skip;
    }

    /// <summary><paramref name="elements"/> rounded up to whole lines, so that arrays laid end to end keep one alignment.</summary>
    public static int RoundUp<T>(int elements)
        where T : unmanaged => (elements + Slack<T>() - 1) / Slack<T>() * Slack<T>();

    /// <summary>
    /// The span over which a load is first compared with the stores still in flight. Cores match addresses on their low
    /// 12 bits first ("4K aliasing", documented for Intel's and seen on this Zen 5), so a load whose offset in its 4 KiB
    /// page overlaps that of a recent store to another address waits for it. The per-channel arrays the backward and the
    /// statistics store beside every data vector of wide rows are therefore placed at a page offset far from the data
    /// streams' (<see cref="FarthestFrom"/>), or at least not just above them (<see cref="AlignAtClearOf{T}"/>).
    /// </summary>
    /// <remarks>
    /// Float32 [256,1024] in cache (twenty-first session, ABBA, fastest of 16 rounds against a copy, three processes):
    /// dx's pair loop after a read of x and dy took 2.67-2.78x with its coefficients 0-192 bytes above dx's page offset,
    /// 2.52-2.63x with them 512-2048 bytes away, and 2.17-2.22x with constant coefficients; the gradient sums took
    /// 1.15-1.34x with the accumulators 192 bytes above x's offset and 1.11-1.20x with them 1-2 KiB away. The library's
    /// backward with this placement against without (builds alternating in one process, two runs): float32 [256,1024]
    /// 0.92-0.98 of its time, [128,2048] 0.94-0.96, [512,512] 0.97-0.99, double [128,1024] 0.97, [256,1024] 0.98; from
    /// memory [64,7,7,2048] and [12544,512] 0.98-1.02.
    /// </remarks>
    public const int PageBytes = 4096;

    /// <summary>
    /// How far, in bytes, a load's page offset may lie above that of an earlier store still in flight and wait for it
    /// (<see cref="PageBytes"/>). On the AMD EPYC (Zen 4) of the forty-third session, float32 [256,1024] in cache, the
    /// layer's inference took 1.4-2.1x a copy with the output's page offset 40-136 bytes above the input's, and
    /// 1.16-1.35x at 0-32 bytes and from 160 bytes up; consecutive large managed arrays lie 56 bytes apart.
    /// </summary>
    public const int AliasBytes = 256;

    /// <summary>
    /// Whether a pass that reads its inputs and writes its output at the same indices should walk from its end down rather
    /// than up. <paramref name="distances"/> holds, for each pair of an input stream and an output stream that advance
    /// together, the output's page offset less the input's. Walking up, a load follows the stores of the elements just
    /// below it, so an output offset just above an input's (by less than <see cref="AliasBytes"/>) makes loads wait for
    /// stores to other addresses; walking down, one just below. The walk with fewer such pairs wins, up on a tie.
    /// </summary>
    public static bool WalkDown(ReadOnlySpan<int> distances)
    {
        int up = 0, down = 0;
        foreach (int d in distances)
        {
            up += IsJustAbove(d) ? 1 : 0;
            down += IsJustAbove(-d) ? 1 : 0;
        }

        return down < up;
    }

    /// <summary>
    /// Whether an output stream whose page offset lies <paramref name="distance"/> bytes past an input stream's (mod
    /// <see cref="PageBytes"/>) lies just above it: by more than 0 and less than <see cref="AliasBytes"/>, where a load
    /// walking up after the output's stores waits for them.
    /// </summary>
    public static bool IsJustAbove(int distance) => IsJustAbove(distance, PageBytes);

    /// <summary>
    /// <see cref="IsJustAbove(int)"/> against a stream whose rows repeat their page offsets every
    /// <paramref name="period"/> bytes (a power of two, <see cref="RowPeriod"/>): just above one of its rows.
    /// </summary>
    public static bool IsJustAbove(int distance, int period) => (distance & (period - 1)) is > 0 and < AliasBytes;

    /// <summary>
    /// <see cref="WalkDown(ReadOnlySpan{int})"/> for a pass that writes <paramref name="output"/> from
    /// <paramref name="input"/> and <paramref name="second"/> (the same reference when there is one input), rows of
    /// <paramref name="rowBytes"/> bytes that may go two at a time: each input row against output rows i, i - 1 and
    /// i + 1. A contiguous stream passes 0.
    /// </summary>
    public static bool WalkDown<T>(ref readonly T output, ref readonly T input, ref readonly T second, int rowBytes)
        where T : unmanaged
    {
        int first = PageOffset(in output) - PageOffset(in input), other = PageOffset(in output) - PageOffset(in second);
        return WalkDown([first, other, first - rowBytes, other - rowBytes, first + rowBytes, other + rowBytes]);
    }

    /// <summary>Spare elements a buffer needs so that <see cref="AtPageOffset{T}"/> can place it anywhere in a page.</summary>
    public static unsafe int PageSlack<T>()
        where T : unmanaged => PageBytes / sizeof(T);

    /// <summary><paramref name="elements"/> rounded up to whole pages, so that arrays laid end to end share one page offset.</summary>
    public static unsafe int RoundUpToPage<T>(int elements)
        where T : unmanaged => (elements + PageSlack<T>() - 1) / PageSlack<T>() * PageSlack<T>();

    /// <summary>The offset of <paramref name="element"/> in its page, in bytes. A hint, like the alignment above.</summary>
    public static unsafe int PageOffset<T>(ref readonly T element)
        where T : unmanaged => (int)((nint)Unsafe.AsPointer(ref Unsafe.AsRef(in element)) & (PageBytes - 1));

    /// <summary>The line half a page away from page offset <paramref name="offset"/>: the farthest from one stream.</summary>
    public static int Opposite(int offset) => ((offset + (PageBytes / 2)) & (PageBytes - 1)) & ~(Bytes - 1);

    /// <summary>
    /// The line farthest, around the page, from every one of <paramref name="offsets"/> (page offsets in bytes): the
    /// middle of the widest gap between them, rounded down to a line. With three streams the widest gap is at least a
    /// third of the page, so the line is at least 619 bytes from each.
    /// </summary>
    public static int FarthestFrom(ReadOnlySpan<int> offsets)
    {
        int best = 0, bestGap = -1;
        for (int i = 0; i < offsets.Length; i++)
        {
            // The gap from offsets[i] up to the next offset around the page.
            int gap = PageBytes;
            foreach (int other in offsets)
            {
                int distance = (other - offsets[i]) & (PageBytes - 1);
                if (distance != 0 && distance < gap)
                {
                    gap = distance;
                }
            }

            if (gap > bestGap)
            {
                bestGap = gap;
                best = offsets[i] + (gap / 2);
            }
        }

        return (best & (PageBytes - 1)) & ~(Bytes - 1);
    }

    /// <summary>
    /// <paramref name="length"/> elements of <paramref name="buffer"/> starting at page offset <paramref name="offset"/>
    /// (a multiple of <see cref="Bytes"/>, so the start is also on a line); <paramref name="buffer"/> must hold
    /// <c>length + PageSlack&lt;T&gt;()</c>. The same hint as <see cref="Align{T}"/>.
    /// </summary>
    public static unsafe Span<T> AtPageOffset<T>(Span<T> buffer, int offset, int length)
        where T : unmanaged
    {
        int skip = ((offset - PageOffset(in MemoryMarshal.GetReference(buffer))) & (PageBytes - 1)) / sizeof(T);
        return buffer.Slice(skip, length);
    }
}
