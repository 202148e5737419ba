using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using BatchNorm.Kernels;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Kernels;

/// <summary>
/// The placement of per-call coefficient arrays on a 64-byte line (<see cref="CacheLine"/>): streamed passes read them a
/// vector at a time from a chosen element on, and a vector that starts off a line is loaded from two.
/// </summary>
[Trait("Category", "Kernels")]
public class CacheLineTests
{
    [Fact]
    public void AlignAt_starts_the_chosen_element_on_a_line_inside_the_buffer_for_every_start_offset()
    {
        Check<float>();
        Check<double>();
    }

    [Fact]
    public void RoundUp_gives_whole_lines_of_elements()
    {
        CacheLine.RoundUp<float>(1).Should().Be(16);
        CacheLine.RoundUp<float>(16).Should().Be(16);
        CacheLine.RoundUp<float>(17).Should().Be(32);
        CacheLine.RoundUp<float>(2064).Should().Be(2064);
        CacheLine.RoundUp<double>(9).Should().Be(16);
        CacheLine.RoundUp<double>(1032).Should().Be(1032);
        CacheLine.RoundUp<double>(1033).Should().Be(1040);
    }

    [Fact]
    public void AtPageOffset_starts_on_the_chosen_page_offset_inside_the_buffer()
    {
        CheckPage<float>();
        CheckPage<double>();
    }

    [Fact]
    public void RoundUpToPage_gives_whole_pages_of_elements()
    {
        CacheLine.RoundUpToPage<float>(1).Should().Be(1024);
        CacheLine.RoundUpToPage<float>(1024).Should().Be(1024);
        CacheLine.RoundUpToPage<float>(1025).Should().Be(2048);
        CacheLine.RoundUpToPage<double>(300).Should().Be(512);
        CacheLine.RoundUpToPage<double>(1100).Should().Be(1536);
    }

    [Fact]
    public void Opposite_is_the_line_half_a_page_away()
    {
        CacheLine.Opposite(0).Should().Be(2048);
        CacheLine.Opposite(96).Should().Be(2112);
        CacheLine.Opposite(2100).Should().Be(0);
        CacheLine.Opposite(4095).Should().Be(1984);
    }

    /// <summary>
    /// Against a brute-force search: among the 64 line offsets of a page, the chosen one has the largest distance, around
    /// the page, to the nearest of the given offsets (up to the rounding down to a line, 63 bytes).
    /// </summary>
    [Fact]
    public void FarthestFrom_is_as_far_from_every_offset_as_any_line_of_the_page()
    {
        var random = new Random(3);
        var cases = new List<int[]> { new[] { 48, 72, 2112 }, new[] { 0 }, new[] { 0, 2048 }, new[] { 4000, 100 }, new[] { 5, 5, 5 } };
        for (int i = 0; i < 200; i++)
        {
            cases.Add(Enumerable.Range(0, 1 + random.Next(4)).Select(_ => random.Next(4096)).ToArray());
        }

        foreach (int[] offsets in cases)
        {
            int chosen = CacheLine.FarthestFrom(offsets);
            (chosen % CacheLine.Bytes).Should().Be(0);
            chosen.Should().BeInRange(0, CacheLine.PageBytes - CacheLine.Bytes);
            int best = Enumerable.Range(0, 64).Max(line => Nearest(line * 64, offsets));
            Nearest(chosen, offsets).Should().BeGreaterThanOrEqualTo(best - 63, $"offsets {string.Join(", ", offsets)}, chosen {chosen}");
        }

        static int Nearest(int at, int[] offsets) =>
            offsets.Min(o => Math.Min((at - o + 4096) % 4096, (o - at + 4096) % 4096));
    }

    /// <summary>
    /// For page offsets of two loaded streams (one in 4-byte steps over the page, the other a fixed distance on), rows of
    /// several widths, several buffer starts and starting elements: the chosen element starts a line inside the buffer;
    /// where rows repeat their page offsets less often than every 256 bytes, no stored start lies 1-255 bytes above any
    /// row of either stream in its page (distances taken here from the addresses, row by row over a page); and where
    /// <see cref="CacheLine.AlignAt"/>'s own placement is already clear, or nothing can be, it is the one returned.
    /// </summary>
    [Fact]
    public void AlignAtClearOf_keeps_the_stored_starts_from_just_above_every_loaded_row()
    {
        CheckClear<float>(1024);
        CheckClear<float>(256);
        CheckClear<float>(1000);
        CheckClear<float>(384);
        CheckClear<double>(512);
        CheckClear<double>(300);
        CheckClear<double>(160);
    }

    /// <summary>
    /// <see cref="CacheLine.SpreadAcrossPage"/> lays the arrays out one after the other inside the buffer, with the chosen
    /// element of each on a line, the arrays a quarter page apart around the page, the first at the line a quarter page
    /// above the loaded stream's, and none of them just above any loaded row where the rows' period is over 256 bytes.
    /// Checked on the addresses themselves for every load offset (in steps of 4 bytes), three buffer starts, chosen
    /// elements 0 and 3, rows of whole pages and of other sizes, and 257 floats, whose arrays end a quarter page before the
    /// next one's place.
    /// </summary>
    [Fact]
    public void SpreadAcrossPage_puts_the_arrays_a_quarter_page_apart_inside_the_buffer_and_clear_of_the_loaded_rows()
    {
        CheckSpread<float>(1024);
        CheckSpread<float>(96);
        CheckSpread<float>(1000);
        CheckSpread<float>(2048);
        CheckSpread<float>(256);
        CheckSpread<float>(384);
        CheckSpread<float>(257);
        CheckSpread<double>(512);
        CheckSpread<double>(300);
        CheckSpread<double>(6);
        CheckSpread<double>(384);
    }

    /// <summary>
    /// <see cref="CacheLine.QuarterAboveClearOf"/> gives a line from which two or three arrays a quarter page apart lie
    /// off just above every row of two or three loaded streams (x and dy a few lines apart or half a page apart, and a
    /// centre), for rows of whole pages, half and quarter pages and odd sizes; where the quarter above the first stream is
    /// already clear it is that line. Checked by brute force over the rows' page offsets.
    /// </summary>
    [Fact]
    public void QuarterAboveClearOf_keeps_the_spread_arrays_off_just_above_every_loaded_row()
    {
        foreach (int rowBytes in new[] { 4096, 8192, 2048, 1024, 4000, 2400, 512 })
        {
            int period = CacheLine.RowPeriod(rowBytes);
            for (int x = 0; x < 4096; x += 8)
            {
                foreach (int[] loaded in new[] { new[] { x, (x + 112) % 4096 }, new[] { x, (x + 2048) % 4096, (x + 3000) % 4096 }, new[] { x, (x + 960) % 4096 } })
                {
                    foreach (int stored in new[] { 2, 3 })
                    {
                        int first = CacheLine.QuarterAboveClearOf(loaded, rowBytes, stored);
                        string context = $"rows of {rowBytes} B, loaded at {string.Join(",", loaded)}, {stored} arrays";
                        (first % 64).Should().Be(0, context);
                        bool clearAt(int start)
                        {
                            for (int a = 0; a < stored; a++)
                            {
                                foreach (int l in loaded)
                                {
                                    for (int row = 0; row < 4096 / period; row++)
                                    {
                                        int distance = (start + (a * 1024) - l - (row * rowBytes % 4096) + 16384) % 4096 % period;
                                        if (distance is > 0 and < 256)
                                        {
                                            return false;
                                        }
                                    }
                                }
                            }

                            return true;
                        }

                        int quarter = ((loaded[0] & ~63) + 1024) % 4096;
                        if (period > 256)
                        {
                            clearAt(first).Should().BeTrue(context);
                        }

                        if (clearAt(quarter) || period <= 256)
                        {
                            first.Should().Be(quarter, context);
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// <see cref="CacheLine.PlaceReadBeside"/>: every array inside the buffer and on a line, none overlapping the next;
    /// spread, a quarter page apart from the line an eighth of a page above the stores' offset; not spread, end to end a
    /// whole number of lines apart. Three and four arrays, float and double, every store offset in steps of 4 bytes.
    /// </summary>
    [Fact]
    public void PlaceReadBeside_keeps_the_arrays_on_lines_inside_the_buffer_and_spread_from_an_eighth_above_the_stores()
    {
        CheckReadBeside<float>(1024);
        CheckReadBeside<float>(300);
        CheckReadBeside<double>(513);
        CheckReadBeside<double>(64);
    }

    [Fact]
    public void RowPeriod_is_the_power_of_two_the_rows_page_offsets_repeat_at()
    {
        CacheLine.RowPeriod(4096).Should().Be(4096);
        CacheLine.RowPeriod(8192).Should().Be(4096);
        CacheLine.RowPeriod(1024).Should().Be(1024);
        CacheLine.RowPeriod(1536).Should().Be(512);
        CacheLine.RowPeriod(4000).Should().Be(32);
        CacheLine.RowPeriod(12).Should().Be(4);
    }

    private static unsafe void CheckReadBeside<T>(int channels)
        where T : unmanaged
    {
        foreach (int arrays in new[] { 3, 4 })
        {
            foreach (bool spread in new[] { false, true })
            {
                int room = CacheLine.ReadBesideLength<T>(arrays, channels, spread);
                T[] array = GC.AllocateArray<T>(room + 64, pinned: true);
                int[] starts = new int[arrays];
                foreach (int start in new[] { 0, 3 })
                {
                    Span<T> buffer = array.AsSpan(start, room);
                    nint b0 = (nint)Unsafe.AsPointer(ref buffer[0]);
                    for (int stored = 0; stored < 4096; stored += 4)
                    {
                        CacheLine.PlaceReadBeside(buffer, channels, spread, stored, starts);
                        string context = $"{typeof(T).Name}, C {channels}, {arrays} arrays, spread {spread}, buffer at +{start}, stores at {stored}";
                        for (int a = 0; a < arrays; a++)
                        {
                            starts[a].Should().BeGreaterThanOrEqualTo(a == 0 ? 0 : starts[a - 1] + channels, context);
                            (starts[a] + channels).Should().BeLessThanOrEqualTo(room, context);
                            long at = (b0 + ((long)starts[a] * sizeof(T))) & 4095;
                            (at % 64).Should().Be(0, context);
                            if (spread)
                            {
                                at.Should().Be((((stored & ~63) + 512) + (a * 1024)) % 4096, context);
                            }
                            else if (a > 0)
                            {
                                ((starts[a] - starts[a - 1]) * sizeof(T) % 64).Should().Be(0, context);
                            }
                        }
                    }
                }
            }
        }
    }

    private static unsafe void CheckSpread<T>(int channels)
        where T : unmanaged
    {
        int room = (3 * channels) + CacheLine.SpreadSlack<T>(3);
        int rowBytes = channels * sizeof(T);
        int period = CacheLine.RowPeriod(rowBytes);
        T[] array = GC.AllocateArray<T>(room + 1024, pinned: true);
        int[] starts = new int[3];
        foreach (int start in new[] { 0, 5, 700 })
        {
            Span<T> buffer = array.AsSpan(start, room);
            nint b0 = (nint)Unsafe.AsPointer(ref buffer[0]);
            foreach (int index in new[] { 0, 3 })
            {
                for (int load = 0; load < 4096; load += 4)
                {
                    CacheLine.SpreadAcrossPage<T>(buffer, index, channels, CacheLine.QuarterAbove(load), starts);
                    string context = $"{typeof(T).Name}, C {channels}, buffer at +{start}, element {index}, load offset {load}";
                    long[] at = new long[3];
                    for (int a = 0; a < 3; a++)
                    {
                        starts[a].Should().BeGreaterThanOrEqualTo(a == 0 ? 0 : starts[a - 1] + channels, context);
                        (starts[a] + channels).Should().BeLessThanOrEqualTo(room, context);
                        at[a] = (b0 + ((long)(starts[a] + index) * sizeof(T))) & 4095;
                        (at[a] % 64).Should().Be(0, context);
                    }

                    ((at[1] - at[0] + 4096) % 4096).Should().Be(1024, context);
                    ((at[2] - at[0] + 4096) % 4096).Should().Be(2048, context);
                    ((at[0] - (load & ~63) + 4096) % 4096).Should().Be(1024, context);
                    if (period > 256)
                    {
                        for (int a = 0; a < 3; a++)
                        {
                            for (long row = 0; row < 4096 / period; row++)
                            {
                                long distance = (at[a] - ((load + (row * rowBytes)) % 4096) + 8192) % 4096 % period;
                                distance.Should().NotBeInRange(1, 255, $"{context}, array {a}, row {row}");
                            }
                        }
                    }
                }
            }
        }
    }

    private static unsafe void CheckClear<T>(int channels)
        where T : unmanaged
    {
        int length = 3 * channels;
        int rowBytes = channels * sizeof(T);
        int room = length + CacheLine.Slack<T>() + CacheLine.SlideSlack<T>();
        T[] array = GC.AllocateArray<T>(room + 4096, pinned: true);
        nint page = ((nint)Unsafe.AsPointer(ref array[0]) + 4095) & ~(nint)4095;
        int slid = 0;
        foreach (int start in new[] { 0, 5, 700 })
        {
            Span<T> buffer = array.AsSpan(start, room);
            foreach (int index in new[] { 0, 3 })
            {
                int[] stored = [index + channels, index + (2 * channels)];
                for (int load = 0; load < 4096; load += 4)
                {
                    int[] loaded = [load, (load + 1352) % 4096];
                    Span<T> placed = CacheLine.AlignAtClearOf(buffer, index, length, loaded, rowBytes, stored);
                    string context = $"{typeof(T).Name}, C {channels}, buffer at +{start}, element {index}, load offset {load}";
                    placed.Length.Should().Be(length);
                    ((nint)Unsafe.AsPointer(ref placed[index]) % 64).Should().Be(0, context);
                    nint first = (nint)Unsafe.AsPointer(ref placed[0]) - (nint)Unsafe.AsPointer(ref buffer[0]);
                    first.Should().BeInRange(0, (room - length) * sizeof(T), context);
                    Span<T> plain = CacheLine.AlignAt(buffer, index, length);
                    bool clearable = Gcd(rowBytes, 4096) >= 512;
                    bool plainClear = true;
                    foreach (int i in stored)
                    {
                        foreach (int l in loaded)
                        {
                            for (int row = 0; row < 4096 / Gcd(rowBytes, 4096); row++)
                            {
                                long rowOffset = (l + ((long)row * rowBytes)) % 4096;
                                long distance = ((((nint)Unsafe.AsPointer(ref placed[i]) - page) % 4096) - rowOffset + 8192) % 4096;
                                long plainDistance = ((((nint)Unsafe.AsPointer(ref plain[i]) - page) % 4096) - rowOffset + 8192) % 4096;
                                plainClear &= plainDistance is 0 or >= 256;
                                if (clearable)
                                {
                                    distance.Should().NotBeInRange(1, 255, $"{context}, row {row}");
                                }
                            }
                        }
                    }

                    if (plainClear || !clearable)
                    {
                        ((nint)Unsafe.AsPointer(ref placed[0])).Should().Be((nint)Unsafe.AsPointer(ref plain[0]), context);
                    }
                    else
                    {
                        slid++;
                    }
                }
            }
        }

        if (Gcd(rowBytes, 4096) >= 512)
        {
            slid.Should().BeGreaterThan(0, "some load offsets put the plain placement just below a stored start");
        }

        // The rows' page offsets repeat every 4096 / gcd rows, at multiples of the gcd.
        static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);
    }

    private static unsafe void CheckPage<T>()
        where T : unmanaged
    {
        const int length = 300;
        int slack = CacheLine.PageSlack<T>();
        T[] array = GC.AllocateArray<T>(length + (2 * slack), pinned: true);
        foreach (int start in new[] { 0, 1, 3, 17, slack - 1 })
        {
            Span<T> buffer = array.AsSpan(start, length + slack);
            foreach (int offset in new[] { 0, 64, 1088, 2048, 4032 })
            {
                Span<T> placed = CacheLine.AtPageOffset(buffer, offset, length);
                ((nint)Unsafe.AsPointer(ref placed[0]) & 4095).Should().Be(offset, $"{typeof(T).Name}, buffer at +{start}");
                nint first = (nint)Unsafe.AsPointer(ref placed[0]) - (nint)Unsafe.AsPointer(ref buffer[0]);
                first.Should().BeInRange(0, (slack - 1) * sizeof(T), "the placed span lies inside the buffer");
                placed.Length.Should().Be(length);
                CacheLine.PageOffset(in placed[0]).Should().Be(offset);
            }
        }
    }

    private static unsafe void Check<T>()
        where T : unmanaged
    {
        const int length = 100;
        int slack = CacheLine.Slack<T>();
        T[] array = GC.AllocateArray<T>(length + (3 * slack), pinned: true);
        for (int start = 0; start < slack; start++)
        {
            Span<T> buffer = array.AsSpan(start, length + slack);
            for (int index = 0; index < 2 * slack; index++)
            {
                Span<T> placed = CacheLine.AlignAt(buffer, index, length);
                nint address = (nint)Unsafe.AsPointer(ref placed[index]);
                (address % CacheLine.Bytes).Should().Be(0, $"{typeof(T).Name}, buffer at +{start}, element {index}");
                nint first = (nint)Unsafe.AsPointer(ref placed[0]) - (nint)Unsafe.AsPointer(ref buffer[0]);
                first.Should().BeInRange(0, (slack - 1) * sizeof(T), "the placed span lies inside the buffer");
                CacheLine.Skip<T>(placed[index..]).Should().Be(0);
            }
        }
    }
}
