using System;
using System.IO;
using System.Linq;
using BatchNorm.Tensors;
using BatchNorm.Tests.Reference;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests;

public class ReadmeTests
{
    [Theory]
    [InlineData("README")]
    [InlineData("README-MORE")]
    public void The_readme_snippets_are_the_code_this_test_compiles(string marker)
    {
        string source = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "ReadmeExample.cs"));
        string readme = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "README.md"));
        string[] lines = source.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        int begin = Array.FindIndex(lines, l => l.Trim() == $"// {marker}-BEGIN");
        int end = Array.FindIndex(lines, l => l.Trim() == $"// {marker}-END");
        begin.Should().BeGreaterThan(0);
        end.Should().BeGreaterThan(begin + 1);
        string snippet = string.Join("\n", lines[(begin + 1)..end].Select(l => l.Length >= 8 ? l[8..] : l.TrimStart()));

        readme.Replace("\r\n", "\n").Should().Contain(snippet);
        readme.Should().Contain("using BatchNorm;").And.Contain("using BatchNorm.Tensors;");
    }

    [Fact]
    public void The_second_readme_snippet_runs()
    {
        var (layer, _, _) = ReadmeExample.Run();
        var x = new NdArray<float>([1f, 200f, -3f, 2f, 210f, -1f], new NdShape(2, 3));
        float[] before = x.ToArray();
        float[] expected = layer.Call(layer.Call(x)).ToArray();

        var (bn2, tensor, grads, copy) = ReadmeExample.More(layer, x);

        bn2.DType.Should().Be("float64");
        bn2.Center.Should().BeFalse();
        NdArray<float>.FromTensor(tensor.AsReadOnlyTensorSpan()).ToArray().Should().Equal(expected, "two in-place inference calls, one through the Tensor view");
        x.ToArray().Should().Equal(expected, "the Tensor shares the NdArray's memory");
        before.Should().NotEqual(expected);
        grads.InputGradient.ToArray().Should().OnlyContain(v => v == 0f, "dL/dy = 0 gives zero gradients");
        grads.IncludesRegularization.Should().BeTrue();
        copy.GetConfig().ToJson().Should().Be(layer.GetConfig().ToJson());
        layer.MovingMean.ToArray().Should().NotEqual([2.5f, 200f, -1.5f], "the training call moved them");
    }

    [Fact]
    public void The_readme_snippet_computes_keras_numbers()
    {
        var (layer, training, inference) = ReadmeExample.Run();

        double[] x = [1, 200, -3, 2, 210, -1, 3, 190, -2, 4, 200, 0];
        int[] shape = [4, 3];
        var (mean, variance) = ReferenceBatchNorm.Moments(x, shape, -1);
        double[] expectedTraining = ReferenceBatchNorm.Normalize(x, shape, -1, mean, variance, null, null, 1e-3);
        double[] movingMean = ReferenceBatchNorm.UpdateMoving([0, 0, 0], mean, 0.9);
        double[] movingVariance = ReferenceBatchNorm.UpdateMoving([1, 1, 1], variance, 0.9);
        double[] expectedInference = ReferenceBatchNorm.Normalize(x, shape, -1, movingMean, movingVariance, null, null, 1e-3);

        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<float>(training.ReadOnlySpan), expectedTraining, 1e-5, 1e-5, "training output");
        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<float>(inference.ReadOnlySpan), expectedInference, 1e-5, 1e-5, "inference output");
        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<float>(layer.MovingMean.ReadOnlySpan), movingMean, 1e-6, 0, "moving_mean");
        Tolerance.ShouldBeRelativelyClose(Tolerance.ToDouble<float>(layer.MovingVariance.ReadOnlySpan), movingVariance, 1e-6, 0, "moving_variance");
    }
}
