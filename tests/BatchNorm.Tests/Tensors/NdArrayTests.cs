using System;
using System.Numerics.Tensors;
using BatchNorm.Tensors;
using FluentAssertions;
using Xunit;

namespace BatchNorm.Tests.Tensors;

public class NdArrayTests
{
    [Fact]
    public void Wrapping_an_array_does_not_copy_it()
    {
        float[] data = [1, 2, 3, 4, 5, 6];
        var array = new NdArray<float>(data, new NdShape(2, 3));
        data[4] = 50;
        array[1, 1].Should().Be(50);
        array[0, 2] = 30;
        data[2].Should().Be(30);
        array.GetUnderlyingArray().Should().BeSameAs(data);
        array.Rank.Should().Be(2);
        array.Length.Should().Be(6);
        array.Shape.ToString().Should().Be("[2, 3]");
    }

    [Fact]
    public void FromSpan_and_ToArray_copy()
    {
        float[] data = [1, 2, 3];
        var array = NdArray<float>.FromSpan(data, new NdShape(3));
        data[0] = 9;
        array[0].Should().Be(1);
        float[] copy = array.ToArray();
        copy[1] = 9;
        array[1].Should().Be(2);
    }

    [Fact]
    public void Indexing_is_row_major()
    {
        var array = new NdArray<double>(new NdShape(2, 3, 4));
        for (int i = 0; i < 24; i++)
        {
            array.Span[i] = i;
        }

        array[1, 2, 3].Should().Be(23);
        array[0, 1, 0].Should().Be(4);
        array[1, 0, 2].Should().Be(14);
        Action outOfRange = () => _ = array[0, 3, 0];
        outOfRange.Should().Throw<IndexOutOfRangeException>();
    }

    [Fact]
    public void Reshape_shares_storage()
    {
        var array = new NdArray<float>(new NdShape(2, 3));
        NdArray<float> flat = array.Reshape(new NdShape(6));
        flat[5] = 7;
        array[1, 2].Should().Be(7);
    }

    [Fact]
    public void Conversions_to_System_Numerics_Tensors_are_zero_copy()
    {
        var array = new NdArray<float>(new NdShape(2, 3));
        Tensor<float> tensor = array.ToTensor();
        tensor.Lengths.ToArray().Should().Equal(2, 3);
        tensor[1, 2] = 42;
        array[1, 2].Should().Be(42);

        TensorSpan<float> span = array.AsTensorSpan();
        span[0, 1] = 7;
        array[0, 1].Should().Be(7);
        ReadOnlyTensorSpan<float> readOnly = array;
        readOnly[0, 1].Should().Be(7);
        array.AsReadOnlyTensorSpan().FlattenedLength.Should().Be(6);
    }

    [Fact]
    public void FromTensor_copies_a_strided_view_in_row_major_order()
    {
        float[] storage = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        var everyOtherRow = new ReadOnlyTensorSpan<float>(storage, [2, 3], [6, 1]);
        NdArray<float> copy = NdArray<float>.FromTensor(everyOtherRow);
        copy.Shape.Should().Be(new NdShape(2, 3));
        copy.ToArray().Should().Equal(0, 1, 2, 6, 7, 8);
    }

    [Fact]
    public void The_layer_normalizes_a_Tensor_in_its_own_memory()
    {
        var layer = new BatchNormalization(momentum: 0.0);
        float[] values = [1, 10, 3, 30, 5, 50];
        Tensor<float> tensor = Tensor.Create(values, [3, 2]);

        layer.Call(tensor, tensor, training: true);

        // Channel 0 is {1, 3, 5}: mean 3, variance 8/3; channel 1 is ten times that.
        double a0 = 1 / Math.Sqrt((8.0 / 3) + 1e-3);
        double a1 = 1 / Math.Sqrt((800.0 / 3) + 1e-3);
        tensor[0, 0].Should().BeApproximately((float)(-2 * a0), 1e-6f);
        tensor[2, 1].Should().BeApproximately((float)(20 * a1), 1e-6f);
        layer.MovingMean.ToArray().Should().Equal(3f, 30f);
    }

    [Fact]
    public void Shapes_compare_by_value()
    {
        new NdShape(2, 3).Should().Be(new NdShape(2, 3));
        (new NdShape(2, 3) == new NdShape(3, 2)).Should().BeFalse();
        new NdShape(2, 3).GetHashCode().Should().Be(new NdShape(2, 3).GetHashCode());
        new NdShape(2, 3)[-1].Should().Be(3);
        new NdShape().Length.Should().Be(1);
        new NdShape(4, 0).Length.Should().Be(0);
    }
}
