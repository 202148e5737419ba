using System;
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
