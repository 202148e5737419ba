using System;
using System.Linq;
using System.Threading.Tasks;
using BatchNorm.Tensors;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

public class ConcurrencyTests
{
    [Fact]
    public void Inference_calls_on_a_built_layer_are_safe_from_many_threads()
    {
        var layer = new BatchNormalization(axis: 1, momentum: 0.5);
        var random = new Random(9);
        foreach (int step in Enumerable.Range(0, 3))
        {
            layer.Call(KerasPortedTests.Normal(random, [4, 300, 5], 2, 3), training: true);
        }

        // Wide enough (300 channels) that the per-call coefficients use the pooled path as well as the stack path.
        NdArray<float>[] inputs = Enumerable.Range(0, 16).Select(_ => KerasPortedTests.Normal(random, [4, 300, 5], 2, 3)).ToArray();
        float[][] sequential = inputs.Select(x => layer.Call(x).ToArray()).ToArray();
        float[] movingMean = layer.MovingMean.ToArray();

        var parallel = new float[inputs.Length][][];
        Parallel.For(0, inputs.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            parallel[i] = Enumerable.Range(0, 20).Select(_ => layer.Call(inputs[i]).ToArray()).ToArray();
        });

        for (int i = 0; i < inputs.Length; i++)
        {
            foreach (float[] result in parallel[i])
            {
                result.Should().Equal(sequential[i]);
            }
        }

        layer.MovingMean.ToArray().Should().Equal(movingMean);
    }
}
