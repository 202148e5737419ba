using System;
using System.Linq;
using System.Numerics;
using BatchNorm.Tensors;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

/// <summary>The buffer-taking overloads allocate nothing in steady state, on one thread or several (counted, not timed).</summary>
public class AllocationTests
{
    [Theory]
    [InlineData(new[] { 8, 16 }, -1)]
    [InlineData(new[] { 3, 300 }, -1)]
    [InlineData(new[] { 2, 5, 7 }, 1)]
    [InlineData(new[] { 4096, 64 }, -1)]
    [InlineData(new[] { 2, 64, 64, 40 }, 1)]
    [InlineData(new[] { 16, 32, 7, 7 }, 1)]
    public void Steady_state_calls_allocate_nothing(int[] shape, int axis)
    {
        Check<float>(shape, axis, 1);
        Check<double>(shape, axis, 1);
    }

    /// <summary>
    /// Inputs above the partition threshold, split across threads: the split itself must not allocate either (the
    /// parts, their bodies and the hand-off to the helper threads). Counted on the calling thread, where a per-call
    /// closure, options object or task would be charged; the helper threads run only allocation-free kernel code.
    /// </summary>
    [Theory]
    [InlineData(new[] { 4096, 64 }, -1)]       // stripes of rows
    [InlineData(new[] { 300, 1000 }, -1)]      // wide rows
    [InlineData(new[] { 2, 64, 64, 40 }, 1)]   // channels first, by outer index
    [InlineData(new[] { 1, 8, 200, 200 }, 1)]  // channels first, by channel
    [InlineData(new[] { 64, 128, 7, 7 }, 1)]   // channels first, short runs
    public void Steady_state_calls_on_several_threads_allocate_nothing(int[] shape, int axis)
    {
        Check<float>(shape, axis, 2);
        Check<double>(shape, axis, 3);
    }

    private static void Check<T>(int[] shape, int axis, int degree)
        where T : unmanaged, IBinaryFloatingPointIeee754<T>
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        var random = new Random(1);
        var x = new NdArray<T>(Enumerable.Range(0, n).Select(_ => T.CreateTruncating(random.NextDouble())).ToArray(), shape);
        var y = new NdArray<T>(x.Shape);
        var dy = new T[n];
        var dx = new T[n];
        var layer = new BatchNormalization<T>(axis) { MaxDegreeOfParallelism = degree };
        layer.Call(x, y, training: true);
        var dg = new T[layer.Channels];
        var db = new T[layer.Channels];

        void Inference() => layer.Call(x, y, training: false);
        void Training() => layer.Call(x, y, training: true);
        void Backward() => layer.Backward(dy, dx, dg, db);

        foreach (Action call in new Action[] { Inference, Training, Backward })
        {
            for (int i = 0; i < 5; i++)
            {
                call(); // warm up: JIT, array pool buckets
            }

            // A per-call allocation shows in every window. The runtime can also charge this thread for a few bytes
            // of its own (type statics, on-stack replacement while tier-up lags behind a busy parallel test run), once;
            // so the quietest of several windows is what must be zero.
            long allocated = long.MaxValue;
            for (int window = 0; window < 5 && allocated != 0; window++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 20; i++)
                {
                    call();
                }

                allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            allocated.Should().Be(0, $"{call.Method.Name} on {typeof(T).Name} [{string.Join(", ", shape)}] axis {axis}, {degree} threads");
        }
    }
}
