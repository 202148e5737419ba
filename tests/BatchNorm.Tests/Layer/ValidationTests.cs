using System;
using System.Linq;
using System.Numerics.Tensors;
using BatchNorm.Constraints;
using BatchNorm.Initializers;
using BatchNorm.Regularizers;
using BatchNorm.Tensors;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Layer;

/// <summary>Every bad input gets an ArgumentException-family error naming the parameter, and changes nothing.</summary>
public class ValidationTests
{
    [Theory]
    [InlineData(-0.01)]
    [InlineData(1.01)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Momentum_outside_zero_to_one_is_rejected(double momentum)
    {
        Action act = () => _ = new BatchNormalization(momentum: momentum);
        act.Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "momentum" && e.Message.Contains("0 <= momentum <= 1"));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1e-3)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Epsilon_not_finite_and_positive_is_rejected(double epsilon)
    {
        Action act = () => _ = new BatchNormalization<double>(epsilon: epsilon);
        act.Should().Throw<ArgumentOutOfRangeException>()
            .Where(e => e.ParamName == "epsilon" && e.Message.Contains("epsilon > 0"));
    }

    [Fact]
    public void Unsupported_element_types_are_rejected()
    {
        Action act = () => _ = new BatchNormalization<Half>();
        act.Should().Throw<NotSupportedException>().WithMessage("*float or double*");
    }

    [Theory]
    [InlineData(2, new[] { 4, 3 })]
    [InlineData(-3, new[] { 4, 3 })]
    [InlineData(5, new[] { 2, 3, 4, 5, 6 })]
    [InlineData(0, new int[0])]
    public void Axis_out_of_range_or_rank_zero_is_rejected_and_the_layer_stays_unbuilt(int axis, int[] shape)
    {
        var layer = new BatchNormalization(axis: axis);
        Action build = () => layer.Build(shape);
        build.Should().Throw<ArgumentException>().Where(e => e.ParamName == "inputShape" && e.Message.Contains("rank"));
        Action call = () => layer.Call(new NdArray<float>(shape), training: true);
        call.Should().Throw<ArgumentException>().Where(e => e.ParamName == "inputs");
        layer.IsBuilt.Should().BeFalse();
    }

    [Fact]
    public void A_zero_channel_dimension_is_rejected()
    {
        var layer = new BatchNormalization();
        Action act = () => layer.Build(new NdShape(3, 0));
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "inputShape" && e.Message.Contains("at least 1"));
        layer.IsBuilt.Should().BeFalse();
    }

    [Fact]
    public void Wrong_rank_after_build_is_rejected_without_touching_state()
    {
        var (layer, snapshot) = TrainedLayer();
        Action act = () => layer.Call(new NdArray<float>(new NdShape(2, 3, 4)), training: true);
        act.Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "inputs" && e.Message.Contains("rank 2") && e.Message.Contains("got rank 3"));
        ShouldBeUnchanged(layer, snapshot);
    }

    [Fact]
    public void Channel_mismatch_is_rejected_without_touching_state()
    {
        var (layer, snapshot) = TrainedLayer();
        Action act = () => layer.Call(new NdArray<float>(new NdShape(4, 5)), training: true);
        act.Should().Throw<ArgumentException>()
            .Where(e => e.ParamName == "inputs" && e.Message.Contains("Expected 3 channels") && e.Message.Contains("got 5"));
        ShouldBeUnchanged(layer, snapshot);
        Action build = () => layer.Build(new NdShape(4, 5));
        build.Should().Throw<ArgumentException>().Where(e => e.ParamName == "inputShape");
        ShouldBeUnchanged(layer, snapshot);
    }

    [Fact]
    public void Destination_of_another_shape_is_rejected_without_touching_state()
    {
        var (layer, snapshot) = TrainedLayer();
        var x = new NdArray<float>(new NdShape(4, 3));
        Action act = () => layer.Call(x, new NdArray<float>(new NdShape(3, 4)), training: true);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "destination" && e.Message.Contains("[4, 3]"));
        ShouldBeUnchanged(layer, snapshot);
    }

    [Fact]
    public void Partially_overlapping_destination_is_rejected_but_exact_in_place_works()
    {
        var (layer, snapshot) = TrainedLayer();
        float[] buffer = Enumerable.Range(0, 15).Select(i => (float)i).ToArray();
        Action act = () => layer.Call(buffer.AsSpan(0, 12), new NdShape(4, 3), buffer.AsSpan(3, 12), training: true);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "destination" && e.Message.Contains("in place"));
        ShouldBeUnchanged(layer, snapshot);

        float[] expected = layer.Call(new NdArray<float>(buffer[..12], new NdShape(4, 3))).ToArray();
        layer.Call(buffer.AsSpan(0, 12), new NdShape(4, 3), buffer.AsSpan(0, 12));
        buffer[..12].Should().Equal(expected);
    }

    [Fact]
    public void Span_length_not_matching_the_shape_is_rejected()
    {
        var (layer, snapshot) = TrainedLayer();
        Action act = () => layer.Call(new float[11], new NdShape(4, 3), new float[12], training: true);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "inputs" && e.Message.Contains("Expected 12 elements"));
        ShouldBeUnchanged(layer, snapshot);
    }

    [Fact]
    public void An_empty_training_batch_is_rejected_but_empty_inference_is_fine()
    {
        var (layer, snapshot) = TrainedLayer();
        Action act = () => layer.Call(new NdArray<float>(new NdShape(0, 3)), training: true);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "inputs" && e.Message.Contains("at least one element per channel"));
        ShouldBeUnchanged(layer, snapshot);
        layer.Call(new NdArray<float>(new NdShape(0, 3))).Length.Should().Be(0);
    }

    [Fact]
    public void Null_arguments_are_rejected_by_name()
    {
        var layer = new BatchNormalization();
        Action call = () => layer.Call(null!, training: true);
        call.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("inputs");
        Action into = () => layer.Call(new NdArray<float>(new NdShape(2, 3)), null!);
        into.Should().Throw<ArgumentNullException>().Which.ParamName.Should().Be("destination");
        layer.IsBuilt.Should().BeFalse();
    }

    [Fact]
    public void A_strided_tensor_view_is_rejected()
    {
        var (layer, snapshot) = TrainedLayer();
        float[] storage = new float[24];
        ArgumentException? error = null;
        try
        {
            // Every other row of an [8, 3] buffer: a strided, non-dense view.
            var everyOther = new TensorSpan<float>(storage, [4, 3], [6, 1]);
            everyOther.IsDense.Should().BeFalse();
            layer.Call(everyOther, everyOther, training: true);
        }
        catch (ArgumentException e)
        {
            error = e;
        }

        error.Should().NotBeNull();
        error!.ParamName.Should().Be("inputs");
        error.Message.Should().Contain("dense");
        ShouldBeUnchanged(layer, snapshot);
    }

    [Fact]
    public void SetWeights_before_build_is_an_invalid_operation()
    {
        var layer = new BatchNormalization();
        Action act = () => layer.SetWeights(new float[3], new float[3], new float[3], new float[3]);
        act.Should().Throw<InvalidOperationException>().WithMessage("*not built*");
        Action gamma = () => _ = layer.Gamma;
        gamma.Should().Throw<InvalidOperationException>();
    }

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(0)]
    public void SetWeights_with_a_wrong_count_is_rejected_without_touching_state(int count)
    {
        var (layer, snapshot) = TrainedLayer();
        float[][] weights = Enumerable.Range(0, count).Select(_ => new float[3]).ToArray();
        Action act = () => layer.SetWeights(weights);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "weights"
            && e.Message.Contains("Expected 4 weights [gamma, beta, moving_mean, moving_variance]") && e.Message.Contains($"got {count}"));
        ShouldBeUnchanged(layer, snapshot);
    }

    [Fact]
    public void SetWeights_with_a_wrong_shape_is_rejected_without_touching_state()
    {
        var (layer, snapshot) = TrainedLayer();
        Action arrays = () => layer.SetWeights(new float[3], new float[3], new float[4], new float[3]);
        arrays.Should().Throw<ArgumentException>().Where(e => e.ParamName == "weights" && e.Message.Contains("moving_mean") && e.Message.Contains("3 elements"));
        Action matrices = () => layer.SetWeights([
            new NdArray<float>(new NdShape(3)), new NdArray<float>(new NdShape(3)),
            new NdArray<float>(new NdShape(3)), new NdArray<float>(new NdShape(1, 3))]);
        matrices.Should().Throw<ArgumentException>().Where(e => e.ParamName == "weights" && e.Message.Contains("shape [3]") && e.Message.Contains("[1, 3]"));
        ShouldBeUnchanged(layer, snapshot);
    }

    [Theory]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    public void SetWeights_with_an_invalid_moving_variance_is_rejected_without_touching_state(float variance)
    {
        var (layer, snapshot) = TrainedLayer();
        Action act = () => layer.SetWeights([1f, 1f, 1f], [0f, 0f, 0f], [0f, 0f, 0f], [1f, variance, 1f]);
        act.Should().Throw<ArgumentException>().Where(e => e.ParamName == "weights" && e.Message.Contains("moving_variance >= 0"));
        ShouldBeUnchanged(layer, snapshot);
    }

    [Fact]
    public void SetWeights_counts_only_the_weights_that_exist()
    {
        var layer = new BatchNormalization(center: false, scale: false);
        layer.Build(new NdShape(2, 2));
        Action four = () => layer.SetWeights(new float[2], new float[2], new float[2], new float[2]);
        four.Should().Throw<ArgumentException>().Where(e => e.Message.Contains("Expected 2 weights [moving_mean, moving_variance]"));
        layer.SetWeights([5f, 6f], [7f, 8f]);
        layer.MovingMean.ToArray().Should().Equal(5f, 6f);
        layer.MovingVariance.ToArray().Should().Equal(7f, 8f);
    }

    [Fact]
    public void Component_arguments_are_validated_by_name()
    {
        ShouldThrow(() => new L1(-0.1), "l1");
        ShouldThrow(() => new L2(double.NaN), "l2");
        ShouldThrow(() => new L1L2(0.1, double.PositiveInfinity), "l2");
        ShouldThrow(() => new MaxNorm(-1), "maxValue");
        ShouldThrow(() => new MaxNorm(2, axis: 1), "axis");
        ShouldThrow(() => new MinMaxNorm(rate: 1.5), "rate");
        ShouldThrow(() => new MinMaxNorm(minValue: 2, maxValue: 1), "maxValue");
        ShouldThrow(() => new UnitNorm(axis: 2), "axis");
        ShouldThrow(() => new RandomNormal(stddev: 0), "stddev");
        ShouldThrow(() => new TruncatedNormal(mean: double.NaN), "mean");
        ShouldThrow(() => new RandomUniform(1, 0), "maxval");
        ShouldThrow(() => new Constant(double.NaN), "value");

        Action initializer = () => Initializer.Get("glorot_magic");
        initializer.Should().Throw<ArgumentException>().Where(e => e.ParamName == "name" && e.Message.Contains("random_normal"));
        Action regularizer = () => Regularizer.Get("l3");
        regularizer.Should().Throw<ArgumentException>().Where(e => e.ParamName == "name" && e.Message.Contains("l1_l2"));
        Action constraint = () => Constraint.Get("positive");
        constraint.Should().Throw<ArgumentException>().Where(e => e.ParamName == "name" && e.Message.Contains("non_neg"));
    }

    [Fact]
    public void NdArray_and_NdShape_reject_inconsistent_data()
    {
        Action length = () => _ = new NdArray<float>(new float[5], new NdShape(2, 3));
        length.Should().Throw<ArgumentException>().Where(e => e.ParamName == "data" && e.Message.Contains("Expected 6 elements"));
        Action negative = () => _ = new NdShape(2, -1);
        negative.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("dimensions");
        Action overflow = () => _ = new NdShape(1 << 20, 1 << 20);
        overflow.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be("dimensions");
        Action indices = () => _ = new NdArray<float>(new NdShape(2, 3))[1];
        indices.Should().Throw<ArgumentException>().Which.ParamName.Should().Be("indices");
    }

    private static void ShouldThrow(Func<object> create, string paramName)
    {
        Action act = () => create();
        act.Should().Throw<ArgumentOutOfRangeException>().Which.ParamName.Should().Be(paramName);
    }

    private static (BatchNormalization Layer, float[][] Snapshot) TrainedLayer()
    {
        var layer = new BatchNormalization(momentum: 0.5);
        layer.Call(new NdArray<float>([1f, 2f, 3f, 4f, 6f, 9f, 0f, 1f, 5f, 2f, 2f, 2f], new NdShape(4, 3)), training: true);
        return (layer, layer.GetWeights().Select(w => w.ToArray()).ToArray());
    }

    private static void ShouldBeUnchanged(BatchNormalization layer, float[][] snapshot)
    {
        layer.IsBuilt.Should().BeTrue();
        layer.InputRank.Should().Be(2);
        layer.Channels.Should().Be(3);
        NdArray<float>[] now = layer.GetWeights();
        now.Should().HaveCount(snapshot.Length);
        for (int i = 0; i < now.Length; i++)
        {
            now[i].ToArray().Should().Equal(snapshot[i], $"weight {i} must be unchanged");
        }
    }
}
