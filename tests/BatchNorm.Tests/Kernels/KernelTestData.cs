using System;
using System.Collections.Generic;
using System.Linq;
using BatchNorm.Kernels;

namespace BatchNorm.Tests.Kernels;

public static class KernelTestData
{
    /// <summary>Every vector width this process can run (the CI legs with DOTNET_Enable*=0 shrink the list).</summary>
    public static IEnumerable<object[]> Widths => VectorWidths.Supported.Select(w => new object[] { (int)w });

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
