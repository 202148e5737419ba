using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using BatchNorm.Kernels;
using FluentAssertions;

namespace BatchNorm.Tests.Kernels;

public static class KernelTestData
{
    /// <summary>Each value's bits as a double (float widens exactly), for comparisons that must be bitwise: NaN payloads and signed zeros included.</summary>
    public static long[] Bits<T>(T[] values)
        where T : unmanaged, IBinaryFloatingPointIeee754<T> =>
        [.. values.Select(v => BitConverter.DoubleToInt64Bits(double.CreateTruncating(v)))];

    /// <summary>Every vector width this process can run (the CI legs with DOTNET_Enable*=0 shrink the list).</summary>
    public static IEnumerable<object[]> Widths => VectorWidths.Supported.Select(w => new object[] { (int)w });

    /// <summary>
    /// Checks a width rule (<paramref name="ofFloat"/> and <paramref name="ofDouble"/>, given the best width and a layout)
    /// on a 512-bit machine against each case's written-out width, and that machines without 512-bit vectors keep their
    /// widest on each of <paramref name="keepBest"/> (float layouts).
    /// </summary>
    internal static void WidthRuleHolds(
        (ChannelLayout Layout, bool IsFloat, VectorWidth Expected)[] cases, Func<VectorWidth, ChannelLayout, VectorWidth> ofFloat,
        Func<VectorWidth, ChannelLayout, VectorWidth> ofDouble, params ChannelLayout[] keepBest)
    {
        foreach (var (layout, isFloat, expected) in cases)
        {
            VectorWidth chosen = isFloat ? ofFloat(VectorWidth.Vector512, layout) : ofDouble(VectorWidth.Vector512, layout);
            chosen.Should().Be(expected, $"{layout} of {(isFloat ? "float" : "double")}");
        }

        foreach (VectorWidth best in new[] { VectorWidth.Vector256, VectorWidth.Vector128, VectorWidth.Scalar })
        {
            foreach (ChannelLayout layout in keepBest)
            {
                ofFloat(best, layout).Should().Be(best, $"{layout} with {best} at best");
            }
        }
    }

    /// <summary>Elements from the start of <paramref name="pinned"/> (a pinned array) to its first 64-byte boundary.</summary>
    internal static unsafe int ElementsToLine<T>(T[] pinned)
        where T : unmanaged =>
        (int)(((64 - ((nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref pinned[0]) & 63)) & 63) / sizeof(T));

    /// <summary>
    /// A new pinned array (<paramref name="pinned"/>) filled with <paramref name="sentinel"/>, and the index in it of
    /// <paramref name="length"/> elements that start at byte <paramref name="pageOffset"/> of a 4 KiB page, with at least
    /// 16 elements on either side: for passes whose walk depends on the page offsets of their buffers
    /// (<c>CacheLine.WalkDown</c>).
    /// </summary>
    internal static unsafe int AtPageOffset<T>(int pageOffset, int length, T sentinel, out T[] pinned)
        where T : unmanaged
    {
        int page = 4096 / sizeof(T);
        pinned = GC.AllocateArray<T>(length + page + 32, pinned: true);
        pinned.AsSpan().Fill(sentinel);
        int first = (int)((nint)System.Runtime.CompilerServices.Unsafe.AsPointer(ref pinned[16]) & 4095);
        return 16 + (((pageOffset - first) & 4095) / sizeof(T));
    }

    /// <summary>Values with per-channel offsets and spreads (deterministic).</summary>
    public static double[] Data(int length, int seed, double offset = 1.0, double spread = 1.0)
    {
        var random = new Random(seed);
        var x = new double[length];
        for (int i = 0; i < length; i++)
        {
            x[i] = offset + (spread * ((random.NextDouble() * 2) - 1));
        }

        return x;
    }

    /// <summary>Sizes around every vector width (float 4/8/16, double 2/4/8) and its multiples.</summary>
    public static IEnumerable<int> SizesAroundWidths(int max)
    {
        var sizes = new SortedSet<int>();
        for (int i = 1; i <= Math.Min(max, 40); i++)
        {
            sizes.Add(i);
        }

        foreach (int w in new[] { 2, 4, 8, 16 })
        {
            foreach (int m in new[] { 1, 2, 3, 4, 5, 8 })
            {
                foreach (int delta in new[] { -1, 0, 1 })
                {
                    int n = (w * m) + delta;
                    if (n >= 1 && n <= max)
                    {
                        sizes.Add(n);
                    }
                }
            }
        }

        return sizes;
    }
}
