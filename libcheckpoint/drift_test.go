package libcheckpoint

import (
	"reflect"
	"strings"
	"testing"
)

// notInManifest are the checkpoint options a manifest does not record,
// and why: they say where and how this run writes, not what the images
// are.
var notInManifest = map[string]string{
	"StatusFD":    "a descriptor of the checkpointing process",
	"Export":      "where the archive went, not what it holds",
	"ExportTo":    "an io.Writer of the caller",
	"Compress":    "the archive's compression, which the archive itself tells",
	"Progress":    "an io.Writer of the caller",
	"CallerFroze": "who froze the container; the images record it thawed either way",
}

// optionFields lists the fields of an options struct, embedded structs
// flattened.
func optionFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, optionFields(f.Type)...)
			continue
		}
		out = append(out, f)
	}
	return out
}

// Every checkpoint option is recorded in the manifest under its own name
// (or is on notInManifest with a reason), and manifestOptions copies it:
// a new option can't silently drop out of the manifest, inspect and
// restore's auto-apply.
func TestEveryCheckpointOptionIsRecorded(t *testing.T) {
	var opts CheckpointOptions
	ov := reflect.ValueOf(&opts).Elem()
	mt := reflect.TypeOf(ManifestOptions{})
	for _, f := range optionFields(ov.Type()) {
		if _, skip := notInManifest[f.Name]; skip {
			if _, ok := mt.FieldByName(f.Name); ok {
				t.Errorf("%s is on notInManifest but ManifestOptions has it", f.Name)
			}
			continue
		}
		mf, ok := mt.FieldByName(f.Name)
		if !ok {
			t.Errorf("CheckpointOptions.%s is neither in ManifestOptions nor on notInManifest", f.Name)
			continue
		}
		// The manifest records a typed option (CgroupMode) as its string.
		if mf.Type != f.Type && (mf.Type.Kind() != f.Type.Kind() || !f.Type.ConvertibleTo(mf.Type)) {
			t.Errorf("%s: ManifestOptions has %v, CheckpointOptions %v", f.Name, mf.Type, f.Type)
		}
		if !strings.Contains(mf.Tag.Get("json"), "omitempty") {
			t.Errorf("ManifestOptions.%s: json tag %q lacks omitempty (older manifests leave it out)", f.Name, mf.Tag.Get("json"))
		}
		// Set this one field, and only it must arrive.
		one := CheckpointOptions{}
		fv := reflect.ValueOf(&one).Elem().FieldByIndex(fieldIndex(ov.Type(), f.Name))
		switch fv.Kind() {
		case reflect.String:
			fv.SetString("x")
		case reflect.Bool:
			fv.SetBool(true)
		case reflect.Slice:
			fv.Set(reflect.Append(reflect.MakeSlice(fv.Type(), 0, 1), reflect.ValueOf("x").Convert(fv.Type().Elem())))
		default:
			t.Errorf("%s: no test value for kind %v", f.Name, fv.Kind())
			continue
		}
		got := reflect.ValueOf(manifestOptions(one)).FieldByName(f.Name)
		if !reflect.DeepEqual(got.Interface(), fv.Convert(mf.Type).Interface()) {
			t.Errorf("manifestOptions drops %s: got %v, want %v", f.Name, got, fv)
		}
	}
	for _, name := range []string{"ExportTo", "Progress", "StatusFD", "Export", "Compress"} {
		if _, ok := ov.Type().FieldByName(name); !ok {
			t.Errorf("notInManifest names %s, which CheckpointOptions no longer has", name)
		}
	}
}

func fieldIndex(t reflect.Type, name string) []int {
	f, _ := t.FieldByName(name)
	return f.Index
}
